"""Health of the SMS receiver container: it holds an established TCP connection to the SMSC.

Reads the SMSC port from AIRFLOW_CONN_SMSC and looks for an ESTABLISHED socket to it in
/proc/net/tcp{,6} (no tools needed in the image). Exit 0 healthy, 1 not."""

import json
import os
import sys

port = int(json.loads(os.environ["AIRFLOW_CONN_SMSC"])["port"])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        fields = row.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
            sys.exit(0)
sys.exit(1)
