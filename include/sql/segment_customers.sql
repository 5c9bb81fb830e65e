{#-
  Stock-customer segmentation (存量客户细分), exactly per spec/segmentation.md.
  Runs in the data mart, or in marketing_db against the usage pivot and the rows of segment_base.sql
  (relay_table); its rows land in marketing_db.mkt_segment_snapshot.

  Context: cfg (qz_outbound.segmentation.SegmentationConfig), src (table prefix),
  dialect, n_slices, usage_pivot (the table holding segment_usage.sql's rows for M0, or none: then
  they are computed here), relay_table (a table in marketing_db holding segment_base.sql's rows for
  this slice, copied from the data mart when it is another database; or none: the customer's own
  columns are computed here, by the same macros). Bind parameters: d, m0, m1, m2 (ISO dates), d_year, d_month,
  d_day, and slice when n_slices > 1 (_slice.sql: every base table is cut the same way, so
  slices never overlap).

  Change rules are written without division: with s = M1 + M2 (base = s / 2),
  change <= t  <=>  2*M0 - (1 + t)*s <= 0   when s > 0.
  Sums are taken in double precision on both databases (numeric aggregation is
  several times slower on PostgreSQL); `eps` absorbs binary floating point and
  is far below the granularity of real inputs (values with up to 4 decimals,
  thresholds with up to 2), so boundaries stay exact.
  When the base is 0 the change is +inf (M0 > 0) or 0, and the comparison with
  the threshold is decided here, at render time.
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% set eps = '0.0000001' %}
{% set dims = cfg.stability.dimension_priority %}
{% import '_slice.sql' as sl %}
{% import '_segment_base.sql' as base %}
{% set relay_table = relay_table | default(none) %}
{% macro in_slice(expr) %}{{ sl.in_slice(d, expr, n_slices) }}{% endmacro %}
{% macro change_le(x, t) -%}
(case when {{ x }}_s > 0 then 2 * {{ x }}_m0 - {{ 1 + t }} * {{ x }}_s <= {{ eps }}
      else {{ 'false' if dialect == 'postgresql' else '0' }}{% if t >= 0 %} or {{ x }}_m0 <= 0{% endif %} end)
{%- endmacro %}
{% macro change_ge(x, t) -%}
(case when {{ x }}_s > 0 then 2 * {{ x }}_m0 - {{ 1 + t }} * {{ x }}_s >= -{{ eps }}
      else {{ x }}_m0 > 0{% if t <= 0 %} or {{ x }}_m0 <= 0{% endif %} end)
{%- endmacro %}
{% macro tier(expr, boundaries, zero_tier) -%}
case
  {%- if zero_tier %}
  when {{ expr }} <= 0 then 0
  {%- endif %}
  {%- for b in boundaries | reverse %}
  when {{ expr }} >= {{ b }} then {{ boundaries | length + 1 - loop.index0 }}
  {%- endfor %}
  else 1
end
{%- endmacro %}
with usage_by_month as (
    -- one row per customer with the three months side by side (segment_usage.sql); a missing month is 0
{%- if usage_pivot | default(none) %}
    -- built once for M0 and checked against the data mart every cycle (qz_outbound.segmentation.usage_pivot)
    select msisdn, spend_m0, spend_s, voice_m0, voice_s, data_m0, data_s, sms_m0
    from {{ usage_pivot }}
    where usage_month = {{ d.date_param('m0') }}{{ in_slice('msisdn') }}
{%- else %}
{% filter indent(4, first=true) %}{% include 'segment_usage.sql' %}{% endfilter %}
{%- endif %}
),

{%- if not relay_table %}
active_bundle as (
{{- base.active_bundle(d, src, in_slice) }}
),
{%- endif %}

customer as (
    select
{%- if relay_table %}
        s.*,  -- the customer's own columns, computed in the data mart (segment_base.sql)
{%- else %}
{{- base.columns(d) }},
{%- endif %}
        coalesce(u.sms_m0, 0) as sms_m0,
        {%- for x in ['spend', 'voice', 'data'] %}
        coalesce(u.{{ x }}_m0, 0) as {{ x }}_m0,
        coalesce(u.{{ x }}_s, 0) as {{ x }}_s{{ ',' if not loop.last }}
        {%- endfor %}
{%- if relay_table %}
    from {{ relay_table }} as s
    left join usage_by_month as u
        on u.msisdn = s.msisdn
{%- else %}
    from {{ src }}subscriber as s
    left join usage_by_month as u
        on u.msisdn = s.msisdn
    left join active_bundle as b
        on b.msisdn = s.msisdn
    where {{ base.segmented(d, in_slice) }}
{%- endif %}
    {{ d.fence('s.msisdn') }}  -- tenure_months and the M0 values once per customer, not once per use below
),

typed as (
    select
        customer.*,
        case
            when is_new then '0'
            when status in ({% for st in cfg.stability.pre_churn_statuses %}'{{ st }}'{{ ', ' if not loop.last }}{% endfor %})
                or (spend_m0 <= 0 and voice_m0 <= 0 and data_m0 <= 0) then '5'
            {%- for x in dims %}
            when {{ change_le(x, cfg.stability.warning_change) }} then '4{{ cfg.dimension_digit(x) }}'
            {%- endfor %}
            when {% for x in dims %}{{ change_le(x, cfg.stability.declining_change) }}{{ ' or ' if not loop.last }}{% endfor %} then '3'
            {%- for x in dims %}
            when {{ change_ge(x, cfg.stability.rising_change) }} then '2{{ cfg.dimension_digit(x) }}'
            {%- endfor %}
            else '1'
        end as stability_type,
        {{ tier('spend_m0', cfg.tiers.spend.boundaries, cfg.tiers.spend.zero_tier) }} as spend_tier,
        {{ tier('voice_m0', cfg.tiers.voice.boundaries, cfg.tiers.voice.zero_tier) }} as voice_tier,
        {{ tier('data_m0', cfg.tiers.data.boundaries, cfg.tiers.data.zero_tier) }} as data_tier,
        {{ tier('tenure_months', cfg.tiers.tenure.boundaries, false) }} as tenure_tier
    from customer
    {{ d.fence() }}  -- the type and the tiers once per customer (each is used twice below)
)

select
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    county_code,
    stability_type,
    spend_tier,
    voice_tier,
    data_tier,
    tenure_tier,
    market_segment,
    stability_type
        || '-P' || {{ d.pad2('spend_tier') }}
        || 'V' || {{ d.pad2('voice_tier') }}
        || 'D' || {{ d.pad2('data_tier') }}
        || 'T' || {{ d.pad2('tenure_tier') }} as segment_code,
    status,
    tenure_months,
    spend_m0,
    voice_m0,
    data_m0,
    case bundle_strength when 2 then 'hard' when 1 then 'soft' end as bundle_kind,
    open_date,
    customer_name,
    terminal_type,
    sms_m0,
    has_hard_bundle,
    has_soft_bundle,
    has_package
from typed
