"""Where MLflow tracks: MLFLOW_TRACKING_URI when set (an MLflow server), else the
profile's `<app>_mlflow` PostgreSQL database with artifacts under the state
directory. `import mlflow` happens only in the functions that need it."""

from __future__ import annotations

from portrait.settings import Settings
from portrait.store import database

EXPERIMENT = "portrait"


def tracking_uri(settings: Settings) -> str:
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return database.server_url(settings, database.database_name(settings, "mlflow")).render_as_string(
        hide_password=False
    )


def artifact_root(settings: Settings) -> str | None:
    """Artifacts next to a database-backed store; an MLflow server decides its own."""
    if tracking_uri(settings).startswith(("http://", "https://", "databricks")):
        return None
    return (settings.state_dir / "mlartifacts").resolve().as_uri()


def mlflow_env(settings: Settings) -> dict[str, str]:
    """What plain `mlflow` commands and mlflow.pyfunc.load_model need to find this
    profile's runs and registered models."""
    uri = tracking_uri(settings)
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}


def configure(settings: Settings, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at this profile and make sure the experiment exists; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(settings))
    mlflow.set_registry_uri(tracking_uri(settings))
    found = mlflow.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found
        else mlflow.create_experiment(experiment, artifact_location=artifact_root(settings))
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
