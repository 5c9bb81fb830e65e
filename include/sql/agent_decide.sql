{#- What becomes of each claimed recharge event (docs/agent-channel.md "Several products"):
    recommended, with the products the shop owner is to pitch in order, or the first reason it is
    not. Runs in marketing_db, set-based over the batch.

    The candidates: the customer's current offer (mkt_target of the latest cycle) when its campaign
    allows the agent channel, and every agent campaign whose recommendation rules (or personal
    import) select the customer, whatever the current offer. A control-group customer is not
    contacted at all. Each candidate must pass every per-campaign rule: not held by validation, not
    paused (mkt_campaign_pause), its month budget not used up (budget_exhausted below), allowed for
    the shop's outlet grade, not the same campaign within the gap nor refused within the block, the
    product not held. The eligible ones are ranked: the current offer first (the cycle chose it for
    the customer), then by expected value (mkt_offer_value of the latest cycle_date <= today, the
    customer's cell: stability type x spend tier x market segment, '(none)' for no market, else the
    campaign's own row ('*') for a cell without history; best
    first), campaigns without a measured value after those with one, by priority, then code. The
    first max_products (or the shop grade's limit) are listed; rank 1 is the customer's SMS.

    Contact policy: every rule is a macro of _contactable.sql, the same the daily cycle applies; the
    hard exclusions come from the data mart as read with the event and from the latest cycle's
    staged exclusions and the opt-out list; frequency rules and the same-campaign gap count every
    real contact up to and including today (history_until is tomorrow), since a recommendation is
    made on the day it is decided and a same-day SMS of the daily cycle is a contact too. A
    recommendation listing several products is ONE contact (one mkt_contact row).

    Context: agent_campaigns (code, product_code, priority, enabled, rules, personal), policy,
    max_products, steering (grade, max_products, campaigns), budgets (code, county ('' = the
    campaign's own), yuan). Bind parameters: token, valid_since (timestamp), ev_cycle (date),
    grade_month (date), d_month and the contact policy's (qz_outbound/policy.py: d is the latest
    cycle, the other dates are today's).
    Result: one row per event and listed product (product_rank 1..n; an event not recommended has
    one row, product_rank null, campaign_code/product_code its best candidate if any). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
{% macro range(col, r) %}{% if r is not none %}{% if r.min is not none %} and s.{{ col }} >= {{ r.min }}{% endif %}{% if r.max is not none %} and s.{{ col }} <= {{ r.max }}{% endif %}{% endif %}{% endmacro %}
with claimed as (
    select
        mkt_agent_event.*,
        customer_status as status
    from mkt_agent_event
    where claim_token = :token
      and state = 'pending'
),

recent as (
    {{ c.recent_contacts(d) }}
),

excluded as (
    {{ c.excluded_customers(d) }}
),

staged_exclusion as (
    {{ c.exclusion_reasons(d, among='select msisdn from claimed') }}
),

snap as (
    select *
    from mkt_segment_snapshot
    where cycle_date = {{ d.date_param('d') }}
      and msisdn in (select msisdn from claimed)
),

current_offer as (
    select
        t.msisdn,
        t.campaign_code,
        t.product_code,
        t.is_control,
        case when 1 = 0 then 0
        {%- for k in agent_campaigns if k.enabled %} when t.campaign_code = '{{ k.code }}' then 1{% endfor %}
            else 0 end as agent_enabled
    from mkt_target as t
    where t.cycle_date = {{ d.date_param('d') }}
      and t.msisdn in (select msisdn from claimed)
),

rule_match as (
    -- agent campaigns whose rules (or personal import) select the customer
    select distinct msisdn, '-' as campaign_code, '-' as product_code
    from claimed
    where 1 = 0
    {%- for k in agent_campaigns if k.enabled and (k.rules is not none or k.personal) %}
    union all
    -- {{ k.code }}
    select distinct
        e.msisdn,
        '{{ k.code }}',
        '{{ k.product_code }}'
    from claimed as e
    {%- if k.rules is not none %}
    join snap as s
        on s.msisdn = e.msisdn
       and s.stability_type in ({% for t in k.rules.stability_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
          {{- range('spend_tier', k.rules.spend_tier) }}
          {{- range('voice_tier', k.rules.voice_tier) }}
          {{- range('data_tier', k.rules.data_tier) }}
          {{- range('tenure_tier', k.rules.tenure_tier) }}
          {%- if k.rules.market_segments %}
       and (s.market_segment in ({% for m in k.rules.market_segments if m != 'none' %}'{{ m }}'{{ ', ' if not loop.last }}{% else %}''{% endfor %}){% if 'none' in k.rules.market_segments %} or s.market_segment is null{% endif %})
          {%- endif %}
          {%- if k.rules.bundle == 'bundled' %}
       and s.bundle_kind is not null
          {%- elif k.rules.bundle == 'unbundled' %}
       and s.bundle_kind is null
          {%- elif k.rules.bundle in ('hard', 'soft') %}
       and s.bundle_kind = '{{ k.rules.bundle }}'
          {%- endif %}
          {%- if k.rules.anniversary_month %}
       and {{ d.month_of('s.open_date') }} = :d_month
          {%- endif %}
    {%- endif %}
    {%- if k.personal %}
    where exists (
        select 1 from mkt_personal_data as p
        where p.campaign_code = '{{ k.code }}'
          and p.msisdn = e.msisdn)
    {%- endif %}
    {%- endfor %}
),

candidate as (
    -- per event and campaign: is it the customer's current offer (then it goes first)
    select
        event_id,
        msisdn,
        campaign_code,
        max(product_code) as product_code,
        max(is_current) as is_current
    from (
        select e.event_id, e.msisdn, o.campaign_code, o.product_code, 1 as is_current
        from claimed as e
        join current_offer as o
            on o.msisdn = e.msisdn
           and o.agent_enabled = 1
        union all
        select e.event_id, e.msisdn, r.campaign_code, r.product_code, 0 as is_current
        from claimed as e
        join rule_match as r
            on r.msisdn = e.msisdn
    ) as c
    group by event_id, msisdn, campaign_code
),

offer_value as (
    -- what an offer is expected to earn in the customer's cell (yuan per offer), latest cycle <= today
    select v.campaign_code, v.stability_type, v.spend_tier, v.market_segment, v.expected_value
    from mkt_offer_value as v
    where v.cycle_date = {{ d.date_param('ev_cycle') }}
),

shop_grade as (
    -- the shop's latest graded month up to this one
    select g.agent_id, g.grade
    from mkt_agent_grade as g
    where g.agent_id in (select agent_id from claimed)
      and g.month = (
          select max(g2.month) from mkt_agent_grade as g2
          where g2.agent_id = g.agent_id
            and g2.month <= {{ d.date_param('grade_month') }})
),

budget_exhausted as (
    -- a campaign (county '' : everywhere) or a county of it whose month budget is used up: the cost
    -- the month's cycles committed reached the budget, or the latest cycle of this month cut
    -- customers for that budget (budgets.py)
    select '-' as campaign_code, '-' as county_code
    from claimed
    where 1 = 0
    {%- for b in budgets %}
    union all
    select distinct '{{ b.code }}', '{{ b.county }}'
    from claimed
    where (select coalesce(sum(bc.committed_yuan), 0) from mkt_budget_commit as bc
           where bc.campaign_code = '{{ b.code }}'
           {%- if b.county %}
             and bc.county_code = '{{ b.county }}'
           {%- endif %}
             and bc.cycle_date >= {{ d.date_param('month_start') }}
             and bc.cycle_date < {{ d.date_param('history_until') }}) >= {{ b.yuan }}
       or exists (
           select 1 from mkt_budget_cut as cut
           where cut.cycle_date = {{ d.date_param('d') }}
             and cut.cycle_date >= {{ d.date_param('month_start') }}
             and cut.campaign_code = '{{ b.code }}'
             and cut.by_county = {{ 1 if b.county else 0 }}
             {%- if b.county %}
             and cut.county_code = '{{ b.county }}'
             {%- endif %})
    {%- endfor %}
),

blocked_campaign as (
    {{ c.blocked_campaigns(d, among='select msisdn from claimed') }}
),

candidate_judged as (
    select
        k.event_id,
        k.campaign_code,
        k.product_code,
        k.is_current,
        coalesce(v.expected_value, vk.expected_value) as expected_value,
        case when 1 = 0 then 0
        {%- for a in agent_campaigns %} when k.campaign_code = '{{ a.code }}' then {{ a.priority }}{% endfor %}
            else 999999 end as priority,
        case when 1 = 0 then 0
        {%- for st in steering %}
            when sg.grade = '{{ st.grade }}' then {{ st.max_products }}
        {%- endfor %}
            else {{ max_products }} end as max_products,
        case
            when exists (   -- validation held the campaign back for the cycle: none of its offers go out
                select 1 from mkt_target_hold as hold
                where hold.cycle_date = {{ d.date_param('d') }}
                  and hold.campaign_code = k.campaign_code) then 'campaign_held'
            when k.campaign_code in (select campaign_code from mkt_campaign_pause) then 'campaign_paused'
            when exists (
                select 1 from budget_exhausted as bx
                where bx.campaign_code = k.campaign_code
                  and (bx.county_code = '' or bx.county_code = coalesce(e.customer_county, e.agent_county)))
                then 'budget_exhausted'
            {%- for st in steering if st.campaigns %}
            when sg.grade = '{{ st.grade }}' and k.campaign_code not in ({% for code in st.campaigns %}'{{ code }}'{{ ', ' if not loop.last }}{% endfor %}) then 'grade_steered'
            {%- endfor %}
            when {{ c.campaign_blocked('blocked_campaign', 'k.msisdn', 'k.campaign_code') }} then 'campaign_blocked'
            when {{ c.holds_product(d, 'k.msisdn', 'k.product_code') }} then 'holds_product'
        end as reason
    from candidate as k
    join claimed as e
        on e.event_id = k.event_id
    left join snap as s
        on s.msisdn = k.msisdn
    left join offer_value as v
        on v.campaign_code = k.campaign_code
       and v.stability_type = s.stability_type
       and v.spend_tier = s.spend_tier
       and v.market_segment = coalesce(s.market_segment, '(none)')
    left join offer_value as vk     -- the campaign's own figure, for a cell without history
        on vk.campaign_code = k.campaign_code
       and vk.stability_type = '*'
       and vk.spend_tier = 0
       and vk.market_segment = '*'
    left join shop_grade as sg
        on sg.agent_id = e.agent_id
),

candidate_ranked as (
    select
        j.*,
        -- every candidate in pitch order (the first one names the reason when none is eligible)
        row_number() over (partition by event_id
                           order by is_current desc, case when expected_value is null then 1 else 0 end,
                                    expected_value desc, priority, campaign_code) as any_rank,
        -- the eligible ones in the same order
        row_number() over (partition by event_id, case when reason is null then 0 else 1 end
                           order by is_current desc, case when expected_value is null then 1 else 0 end,
                                    expected_value desc, priority, campaign_code) as eligible_rank
    from candidate_judged as j
),

best as (
    -- per event: the first eligible candidate, else the first candidate (and its reason)
    select
        event_id,
        max(case when reason is null and eligible_rank = 1 then campaign_code end) as eligible_campaign,
        max(case when reason is null and eligible_rank = 1 then product_code end) as eligible_product,
        max(case when any_rank = 1 then campaign_code end) as first_campaign,
        max(case when any_rank = 1 then product_code end) as first_product,
        max(case when any_rank = 1 then reason end) as first_reason
    from candidate_ranked
    group by event_id
),

judged as (
    select
        e.event_id,
        e.msisdn,
        e.event_time,
        e.agent_id,
        e.agent_msisdn,
        e.outlet_name,
        coalesce(b.eligible_campaign, b.first_campaign, o.campaign_code) as campaign_code,
        coalesce(b.eligible_product, b.first_product, o.product_code) as product_code,
        s.segment_code,
        s.customer_name,
        coalesce(e.customer_county, e.agent_county) as county_code,
        case
            when e.event_time < {{ d.ts_param('valid_since') }} then 'expired'
            when exists (
                select 1 from mkt_agent_event as p
                where p.msisdn = e.msisdn
                  and p.agent_id = e.agent_id
                  and p.amount_yuan = e.amount_yuan
                  and p.event_time = e.event_time
                  and p.event_id < e.event_id) then 'duplicate_topup'
            when e.agent_known = 0 or e.agent_msisdn is null then 'unknown_agent'
            when e.customer_status is null then 'unknown_customer'
            when {{ c.cancelled('e') }} then 'cancelled'
            when e.dnd = 1 or coalesce(x.dnd, 0) = 1 then 'dnd'
            when e.msisdn in ({{ c.opted_out() }}) then 'opt_out'
            when e.complaint = 1 or coalesce(x.complaint, 0) = 1 then 'complaint'
            -- the shared definition of who may never be contacted, whatever it grows to
            when {{ c.hard_excluded('e', 'ex') }} then 'excluded'
            when o.is_control = 1 then 'control_group'
            when b.event_id is null and o.msisdn is null then 'no_offer'
            when b.event_id is null then case
                when exists (
                    select 1 from mkt_target_hold as hold
                    where hold.cycle_date = {{ d.date_param('d') }}
                      and hold.campaign_code = o.campaign_code) then 'campaign_held'
                else 'offer_not_agent' end
            when {{ c.capped(policy, 'rc') }} then 'capped'
            when b.eligible_campaign is null then b.first_reason
        end as reason
    from claimed as e
    left join current_offer as o
        on o.msisdn = e.msisdn
    left join best as b
        on b.event_id = e.event_id
    left join excluded as ex
        on ex.msisdn = e.msisdn
    left join staged_exclusion as x
        on x.msisdn = e.msisdn
    left join recent as rc
        on rc.msisdn = e.msisdn
    left join snap as s
        on s.msisdn = e.msisdn
),

decided as (
    select
        j.*,
        case
            when reason is not null then reason
            -- one recommendation per customer per batch: the first top-up that may have one
            when row_number() over (partition by msisdn, case when reason is null then 0 else 1 end
                                    order by event_time, event_id) > 1 then 'duplicate_customer'
            else 'recommended'
        end as outcome
    from judged as j
)

select
    dd.event_id,
    dd.msisdn,
    dd.agent_id,
    dd.agent_msisdn,
    dd.outlet_name,
    coalesce(l.campaign_code, dd.campaign_code) as campaign_code,
    coalesce(l.product_code, dd.product_code) as product_code,
    l.eligible_rank as product_rank,
    l.expected_value,
    dd.segment_code,
    dd.customer_name,
    dd.county_code,
    dd.outcome
from decided as dd
left join candidate_ranked as l
    on l.event_id = dd.event_id
   and dd.outcome = 'recommended'
   and l.reason is null
   and l.eligible_rank <= l.max_products
order by dd.event_id, l.eligible_rank
