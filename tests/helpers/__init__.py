"""What tests (and bench/) share: data paths, throwaway databases, ingest, Feast, deployments, rendering. Test modules import only from here; fixtures live in the conftest.py of their folder."""
