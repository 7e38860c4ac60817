from services.guarantees.models import SCHEMA, metadata
from services.guarantees.settings import Settings
from shared.migrations import run_env

run_env(metadata, SCHEMA, Settings().database_url)
