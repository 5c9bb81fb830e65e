{#- What becomes of each claimed recharge event (docs/agent-channel.md): recommended, with the
    campaign, or the first reason it is not. Runs in marketing_db, set-based over the batch.

    The offer: the customer's current offer (mkt_target of the latest cycle) when its campaign
    allows the agent channel; without a current offer, the best-priority agent campaign whose
    recommendation rules (or personal import) select the customer. A current offer of a campaign
    without the agent channel stays the only offer (offers never overlap): no recommendation.

    Contact policy: every rule is a macro of _contactable.sql, the same the daily cycle applies; the
    hard exclusions come from the data mart as read with the event and from the latest cycle's
    staged exclusions and the opt-out list; frequency rules and the same-campaign gap count every
    real contact up to and including today (history_until is tomorrow), since a recommendation is
    made on the day it is decided and a same-day SMS of the daily cycle is a contact too.

    Context: agent_campaigns (code, product_code, priority, enabled, rules, personal), policy.
    Bind parameters: token, valid_since (timestamp), d_month and the contact policy's
    (qz_outbound/policy.py: d is the latest cycle, the other dates are today's). -#}
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
        case t.campaign_code
        {%- for k in agent_campaigns if k.enabled %} when '{{ k.code }}' then 1{% endfor %}
            else 0 end as agent_enabled
    from mkt_target as t
    where t.cycle_date = {{ d.date_param('d') }}
      and t.msisdn in (select msisdn from claimed)
),

rule_offer as (
    -- agent campaigns that pick customers without a current offer: the best priority wins
    select
        msisdn,
        campaign_code,
        product_code,
        row_number() over (partition by msisdn order by priority, campaign_code) as offer_rank
    from (
        select distinct msisdn, '-' as campaign_code, '-' as product_code, 999999 as priority
        from claimed
        where 1 = 0
    {%- for k in agent_campaigns if k.enabled and (k.rules is not none or k.personal) %}
        union all
        -- {{ k.code }}
        select distinct
            e.msisdn,
            '{{ k.code }}',
            '{{ k.product_code }}',
            {{ k.priority }}
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
    ) as matched
),

offer as (
    -- one offer per customer: the current one if it exists, else the rules' choice
    select
        e.event_id,
        case when o.msisdn is not null then o.campaign_code else r.campaign_code end as campaign_code,
        case when o.msisdn is not null then o.product_code else r.product_code end as product_code,
        coalesce(o.is_control, 0) as is_control,
        case when o.msisdn is null then 1 else o.agent_enabled end as agent_enabled
    from claimed as e
    left join current_offer as o
        on o.msisdn = e.msisdn
    left join rule_offer as r
        on r.msisdn = e.msisdn
       and r.offer_rank = 1
),

blocked_campaign as (
    {{ c.blocked_campaigns(d, among='select msisdn from claimed') }}
),

judged as (
    select
        e.event_id,
        e.msisdn,
        e.event_time,
        e.agent_id,
        e.agent_msisdn,
        e.outlet_name,
        o.campaign_code,
        o.product_code,
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
            when exists (   -- validation held the campaign back for the cycle: none of its offers go out
                select 1 from mkt_target_hold as hold
                where hold.cycle_date = {{ d.date_param('d') }}
                  and hold.campaign_code = o.campaign_code) then 'campaign_held'
            when o.campaign_code is null then 'no_offer'
            when o.agent_enabled = 0 then 'offer_not_agent'
            when {{ c.capped(policy, 'rc') }} then 'capped'
            when {{ c.campaign_blocked('blocked_campaign', 'e.msisdn', 'o.campaign_code') }} then 'campaign_blocked'
            when {{ c.holds_product(d, 'e.msisdn', 'o.product_code') }} then 'holds_product'
        end as reason
    from claimed as e
    join offer as o
        on o.event_id = e.event_id
    left join excluded as ex
        on ex.msisdn = e.msisdn
    left join staged_exclusion as x
        on x.msisdn = e.msisdn
    left join recent as rc
        on rc.msisdn = e.msisdn
    left join snap as s
        on s.msisdn = e.msisdn
)

select
    event_id,
    msisdn,
    agent_id,
    agent_msisdn,
    outlet_name,
    campaign_code,
    product_code,
    segment_code,
    customer_name,
    county_code,
    case
        when reason is not null then reason
        -- one recommendation per customer per batch: the first top-up that may have one
        when row_number() over (partition by msisdn, case when reason is null then 0 else 1 end
                                order by event_time, event_id) > 1 then 'duplicate_customer'
        else 'recommended'
    end as outcome
from judged
order by event_id
