{#-
  The cycle's target list as validation reads it (write–audit–publish). The joins are done here,
  in the database, so the audit only holds the few columns it checks (at 6.4 million customers
  the list is about 4 million rows).

  query = 'rows': one row per row of mkt_target with its number, county, campaign, the county
  the cycle's snapshot gives the customer, and excluded_reason — why the contact policy forbids
  contacting the customer, or null. Every joined set has at most one row per key, so a row of
  the list stays exactly one row here: a duplicate in this output is a duplicate in the list.
  When several reasons apply, the first in the order below is given. The last, 'budget', is no
  defect of the list: the budget step excluded the row before publishing (validation ignores it).

  query = 'control': per campaign, the customers chosen and those held out as control.

  The contact rules are _contactable.sql's macros, the ones the list was built with.

  Context: query, opt_out_cutoff (true when only opt-outs recorded before the list was built
  count). Bind parameters: d, [opted_out_before].
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
{% if query == 'rows' %}
with target as (
    select
        msisdn,
        county_code,
        campaign_code,
        product_code
    from mkt_target
    where cycle_date = {{ d.date_param('d') }}
),

excluded as (
    -- the data mart's do-not-disturb list and recent marketing complaints, staged for the cycle
    {{ c.exclusion_reasons(d) }}
),

opted_out as (
    -- the opt-out list is live (replies arrive all day); an opt-out recorded after the list was
    -- built is not a defect of the list: the sender checks opt-outs again before every submit
    {{ c.opted_out('opted_out_before' if opt_out_cutoff else none) }}
),

snapshot as (
    -- every non-cancelled customer of the cycle; a target without a row here is cancelled or unknown
    select
        msisdn,
        county_code,
        status
    from mkt_segment_snapshot
    where cycle_date = {{ d.date_param('d') }}
),

budget_cut as (
    -- over the campaign's monthly budget (budget_cut.sql): not a policy defect, never published
    select
        msisdn
    from mkt_budget_cut
    where cycle_date = {{ d.date_param('d') }}
),

held as (
    -- distinct: a row of the list stays one row
    select distinct
        msisdn,
        product_code
    from (
        {{ c.holdings(d) }}
    ) as h
)

select
    t.msisdn,
    t.county_code,
    t.campaign_code,
    s.county_code as snapshot_county_code,
    case
        when x.dnd = 1 then 'dnd'
        when x.complaint = 1 then 'complaint'
        when o.msisdn is not null then 'opt_out'
        when s.msisdn is null or {{ c.cancelled('s') }} then 'cancelled_or_unknown'
        when h.msisdn is not null then 'holds_product'
        when b.msisdn is not null then 'budget'
    end as excluded_reason
from target as t
left join excluded as x
    on x.msisdn = t.msisdn
left join opted_out as o
    on o.msisdn = t.msisdn
left join snapshot as s
    on s.msisdn = t.msisdn
left join budget_cut as b
    on b.msisdn = t.msisdn
left join held as h
    on h.msisdn = t.msisdn
    and h.product_code = t.product_code
{% elif query == 'control' %}
select
    campaign_code,
    count(*) as chosen,
    sum(case when is_control = 1 then 1 else 0 end) as control
from mkt_target
where cycle_date = {{ d.date_param('d') }}
group by campaign_code
order by campaign_code
{% endif %}
