{#-
  The cycle's three months of usage side by side (spec/segmentation.md "Months"): one row per
  customer with any usage row in M2..M0, M0's spend, voice and data, the sum of M1 and M2 of each
  (the base is half of it), and M0's SMS. A missing month adds nothing, so it counts as 0;
  a customer with no row at all is absent here and segment_customers.sql coalesces to 0.

  One definition, read two ways (qz_outbound.segmentation.usage_pivot): inline, inside
  segment_customers.sql; or built once for an M0 into marketing_db.mkt_usage_pivot and read from
  there by every cycle of the month while the data mart's rows for those months are unchanged.

  Context: dialect, src (table prefix), n_slices. Bind parameters: m0, m2 (ISO dates), and slice
  when n_slices > 1 (_slice.sql).
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_slice.sql' as sl %}
select
    {{ d.date_param('m0') }} as usage_month,
    msisdn,
    {%- for x, col in [('spend', 'spend_yuan'), ('voice', 'voice_minutes'), ('data', 'data_mb')] %}
    sum({{ d.as_real(col) }}) filter (where month = {{ d.date_param('m0') }}) as {{ x }}_m0,
    sum({{ d.as_real(col) }}) filter (where month <> {{ d.date_param('m0') }}) as {{ x }}_s,
    {%- endfor %}
    sum(sms_count) filter (where month = {{ d.date_param('m0') }}) as sms_m0
from {{ src }}usage_monthly
where month >= {{ d.date_param('m2') }}
  and month <= {{ d.date_param('m0') }}{{ sl.in_slice(d, 'msisdn', n_slices) }}
group by msisdn
