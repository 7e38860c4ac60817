from services.applications.models import SCHEMA, metadata
from services.applications.settings import Settings
from shared.migrations import run_env

run_env(metadata, SCHEMA, Settings().database_url)
