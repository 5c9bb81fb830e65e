"""Outbound marketing operations for a mobile operator's city branch.

The business logic of the project, importable and testable without Airflow:
segmentation, the data mart generator, reports, and (in later modules)
campaigns, arbitration, the SMS outbox and outcome loading. DAG files in
``dags/`` only wire these functions together.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "include" / "sql"
TEMPLATE_DIR = PROJECT_ROOT / "include" / "templates"
CONFIG_DIR = PROJECT_ROOT / "config"

__all__ = ["PROJECT_ROOT", "SQL_DIR", "TEMPLATE_DIR", "CONFIG_DIR"]
