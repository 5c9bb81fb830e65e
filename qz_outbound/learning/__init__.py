"""The learning loop (docs/learning.md): what each offer is expected to earn per customer cell,
measured from the contact history with its control groups (:mod:`qz_outbound.learning.values`),
read by the cycle's arbitration (``include/sql/target_list.sql``); the offline evaluation that
gates the learned mode (:mod:`qz_outbound.learning.evaluation`) and the share-change report
(:mod:`qz_outbound.learning.shares`)."""
