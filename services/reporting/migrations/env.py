from services.reporting.models import SCHEMA, metadata
from services.reporting.settings import Settings
from shared.migrations import run_env

run_env(metadata, SCHEMA, Settings().database_url)
