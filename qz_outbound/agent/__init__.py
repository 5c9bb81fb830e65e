"""The agent channel (代理商渠道, issue 8): top-ups at agent shops turned into recommendations.

* :mod:`.recommend` — recharge events in, exactly once: ingested, claimed in SQL, decided under the
  contact policy, recorded in ``mkt_contact`` (channel ``agent``) and queued as two SMS (shop owner,
  customer) in the daily cycle's outbox, sent by the same SMPP sender;
* :mod:`.personal_data` — 个性数据导入: per-customer fields for a campaign's texts from CSV/XLSX;
* :mod:`.commission` — 酬金: monthly conversions per shop, settlement statements;
* :mod:`.grading` — monthly outlet scores and grades A–D per county.

Settings: ``config/agent_channel.yaml`` (:mod:`.settings`). Nothing here imports Airflow.
"""
