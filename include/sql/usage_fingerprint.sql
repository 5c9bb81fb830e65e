{#-
  A fingerprint of the data mart's usage rows for months M2..M0, one row per month: how many rows,
  and a checksum over every row's msisdn and values, so that a correction of any field of any row
  (a value changed, usage moved from one number to another, a row added or removed) changes it.
  qz_outbound.segmentation.usage_pivot compares it with the fingerprint the pivot was built from.

  PostgreSQL: the sum of a 64-bit hash of each row, the exclusive or of a differently seeded hash of
  each field (numerics hash by value, so 1.5 and 1.50 are the same; the sum is exact, whatever order
  a parallel scan adds the rows in). 1.6 s for 16.8 M rows on two cores, against 2.5 s for
  hash_record_extended of the row (benchmarks/results/segmentation.md, 2026-12-03).
  SQLite (no hash function): the sums of each column, and the sum of a weight of the number times a
  residue of its values, in integers (each term < 10^10, so the sum cannot overflow below 900
  million rows); a change the sums and that checksum both miss would have to be contrived.

  Context: dialect. Bind parameters: m0, m2 (ISO dates).
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    month,
    count(*) as row_count,
    {%- if dialect == 'postgresql' %}
    sum(hashtextextended(cast(msisdn as text), 0)
        # hash_numeric_extended(cast(spend_yuan as numeric), 1)
        # hash_numeric_extended(cast(voice_minutes as numeric), 2)
        # hash_numeric_extended(cast(data_mb as numeric), 3)
        # hashint8extended(cast(sms_count as bigint), 4)) as checksum
    {%- else %}
    total(spend_yuan) || '/' || total(voice_minutes) || '/' || total(data_mb) || '/' || total(sms_count)
        || '/' || sum((cast(msisdn as integer) % 100003)
                      * ((cast(round(spend_yuan * 100) as integer) + 3 * cast(round(voice_minutes * 100) as integer)
                          + 7 * cast(round(data_mb * 100) as integer) + 11 * sms_count) % 100003)) as checksum
    {%- endif %}
from usage_monthly
where month >= {{ d.date_param('m2') }}
  and month <= {{ d.date_param('m0') }}
group by month
order by month
