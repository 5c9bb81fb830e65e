"""The county portal (县公司外呼门户): call-list downloads and call-outcome uploads per county.

Business logic only (no Airflow): who may see what (:mod:`access`), what an upload does
(:mod:`uploads`), the tables (:mod:`schema`). ``plugins/county_portal.py`` mounts the pages in
Airflow's API server and supplies the signed-in user from Airflow's auth manager.
"""
