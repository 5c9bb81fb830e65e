{#-
  The cycle's offer values (docs/learning.md): per campaign and cell (stability type x spend tier x
  market segment, '(none)' for no market) of the cycle's snapshot, what an offer is expected to
  earn, from the contact history of the look-back: each offer's first attempt (first_contact_id
  null) on sms / call / agent against the campaign's control rows, joined to its own cycle's
  snapshot for the customer's cell; a conversion is converted_at set.

  Empirical Bayes, three levels, beta-binomial per arm with prior strength m (pseudo-customers):
  baseline b = every campaign's control conversion rate (0 without any control);
  campaign rates  pc_k = (x_c + m b) / (n_c + m),  pt_k = (x_t + m (b + prior_uplift)) / (n_t + m);
  cell rates      sc = (x_c + m pc_k) / (n_c + m), st = (x_t + m pt_k) / (n_t + m);
  uplift = st - sc, sd = sqrt(st(1-st)/(n_t+m) + sc(1-sc)/(n_c+m)). A thin cell stays near its
  campaign, a rich one near its raw uplift; a campaign without history has prior_uplift.
  expected_cost = contact cost of an offer + st x offer cost; expected_value = uplift x value per
  conversion - expected_cost (yuan per offer made).

  Besides the cells with history, one row per campaign with stability_type '*', spend_tier 0,
  market_segment '*': the campaign's own figure, what a cell without history reads.

  Context: campaigns [{code, vpc, contact_cost, offer_cost}], m, prior_uplift. Binds: d, since.
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% macro num(v) %}{{ '%.10g' | format(v) }}{% endmacro %}
with campaign as (
{%- for k in campaigns %}
    select '{{ k.code }}' as campaign_code, {{ d.as_real(num(k.vpc)) }} as vpc,
           {{ d.as_real(num(k.contact_cost)) }} as contact_cost,
           {{ d.as_real(num(k.offer_cost)) }} as offer_cost{{ ' union all' if not loop.last }}
{%- endfor %}
),

history as (
    select
        c.campaign_code,
        s.stability_type,
        s.spend_tier,
        coalesce(s.market_segment, '(none)') as market_segment,
        case when c.channel = 'control' then 0 else 1 end as treated,
        case when c.converted_at is not null then 1 else 0 end as converted
    from mkt_contact as c
    join mkt_segment_snapshot as s
        on s.cycle_date = c.cycle_date
       and s.msisdn = c.msisdn
    where c.cycle_date >= {{ d.date_param('since') }}
      and c.cycle_date < {{ d.date_param('d') }}
      and c.first_contact_id is null
      and c.channel in ('sms', 'call', 'agent', 'control')
      and c.campaign_code in (select campaign_code from campaign)
),

cell as (
    select
        campaign_code, stability_type, spend_tier, market_segment,
        sum(treated) as contacted,
        sum(1 - treated) as control,
        sum(treated * converted) as conv_contacted,
        sum((1 - treated) * converted) as conv_control
    from history
    group by campaign_code, stability_type, spend_tier, market_segment
),

baseline as (
    select case when sum(control) > 0 then {{ d.as_real('sum(conv_control)') }} / sum(control) else 0.0 end as b
    from cell
),

per_campaign as (
    select
        k.campaign_code, k.vpc, k.contact_cost, k.offer_cost,
        coalesce(sum(cell.contacted), 0) as contacted,
        coalesce(sum(cell.control), 0) as control,
        coalesce(sum(cell.conv_contacted), 0) as conv_contacted,
        coalesce(sum(cell.conv_control), 0) as conv_control
    from campaign as k
    left join cell
        on cell.campaign_code = k.campaign_code
    group by k.campaign_code, k.vpc, k.contact_cost, k.offer_cost
),

campaign_rate as (
    select
        p.*,
        (p.conv_contacted + {{ num(m) }} * (baseline.b + {{ num(prior_uplift) }})) / (p.contacted + {{ num(m) }}) as pt,
        (p.conv_control + {{ num(m) }} * baseline.b) / (p.control + {{ num(m) }}) as pc
    from per_campaign as p
    cross join baseline
),

rated as (
    select
        cell.campaign_code, cell.stability_type, cell.spend_tier, cell.market_segment,
        cell.contacted, cell.control, cell.conv_contacted, cell.conv_control,
        k.vpc, k.contact_cost, k.offer_cost,
        (cell.conv_contacted + {{ num(m) }} * k.pt) / (cell.contacted + {{ num(m) }}) as st,
        (cell.conv_control + {{ num(m) }} * k.pc) / (cell.control + {{ num(m) }}) as sc
    from cell
    join campaign_rate as k
        on k.campaign_code = cell.campaign_code
    union all
    select
        campaign_code, '*', 0, '*',
        contacted, control, conv_contacted, conv_control,
        vpc, contact_cost, offer_cost, pt, pc
    from campaign_rate
)

select
    {{ d.date_param('d') }} as cycle_date,
    campaign_code,
    stability_type,
    spend_tier,
    market_segment,
    contacted,
    control,
    conv_contacted,
    conv_control,
    case when contacted > 0 and control > 0
        then {{ d.as_real('conv_contacted') }} / contacted - {{ d.as_real('conv_control') }} / control end as uplift_raw,
    st - sc as uplift,
    sqrt(st * (1 - st) / (contacted + {{ num(m) }}) + sc * (1 - sc) / (control + {{ num(m) }})) as uplift_sd,
    vpc as value_per_conversion,
    contact_cost + st * offer_cost as expected_cost,
    (st - sc) * vpc - (contact_cost + st * offer_cost) as expected_value
from rated
