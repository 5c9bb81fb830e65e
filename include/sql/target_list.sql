{#-
  The cycle's target list: every campaign selects its customers, contact policy removes who may
  not be contacted, and each customer keeps one offer (arbitration, docs/learning.md). His choice
  set is his campaigns (the fallback only when he has no other); the policy's choice in mode fixed
  is the best priority (ties: the lower campaign code), in mode learned the best expected value of
  his cell (mkt_offer_value of the day values_date; ties by priority, code), in mode blend the best
  weighted mix of both ranks. A pinned campaign that fixed priorities choose wins in every arm.
  Exploration: a draw in 0..9999 of md5('msisdn|YYYY-MM-DD|explore') below exploration_bp gives
  the customer a campaign of his choice set drawn uniformly ('...|explore_pick' modulo its size).
  Each row logs arm, propensity, fixed_code and learned_code for the offline evaluation.
  Runs in marketing_db over the cycle's snapshot and staged extracts.

  Control group and A/B variant, decided for the winning offer only: a draw in 0..9999 from a
  cryptographic hash (md5, first 32 bits: d.hash32) of 'msisdn|campaign|YYYY-MM|purpose', the
  purpose being 'control' or 'variant'. Deterministic, so a re-run never reshuffles; independent
  between campaigns, months and the two purposes, so being in one campaign's control group says
  nothing about another's (contact-policy.md). control: draw < control_bp; variant: the first
  cumulative cut above the draw (a single variant needs no draw). qz_outbound/targeting.py:
  assignment_draw is the same in Python.

  Context: campaigns (active ones, with control_bp, variant_cuts, pinned, prior_value),
  assignment_month ('YYYY-MM'), cycle_day ('YYYY-MM-DD'), has_values, mode, blend_weight, exploration_bp,
  policy, call_rule, n_slices, ignore_blocks (optional: keep offers the campaign blocks and
  held products would remove; the coverage gap list's "blocked"). Bind parameters: the contact
  policy's (qz_outbound/policy.py), d_month, expiry_<days>, [values_date], [slice].
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
{% import '_slice.sql' as sl %}
{% macro in_slice(expr) %}{{ sl.in_slice(d, expr, n_slices) }}{% endmacro %}
{% macro range(col, r) %}{% if r is not none %}{% if r.min is not none %} and s.{{ col }} >= {{ r.min }}{% endif %}{% if r.max is not none %} and s.{{ col }} <= {{ r.max }}{% endif %}{% endif %}{% endmacro %}
with recent as materialized (   -- one aggregate over the history (coverage.sql says why)
    {{ c.recent_contacts(d) }}
),

excluded as (
    {{ c.excluded_customers(d) }}
),

contactable as (
    select
        s.msisdn,
        s.county_code,
        s.stability_type,
        s.spend_tier,
        s.voice_tier,
        s.data_tier,
        s.tenure_tier,
        s.market_segment,
        s.bundle_kind,
        s.open_date,
        s.segment_code,
        s.terminal_type,
        s.sms_m0
    from mkt_segment_snapshot as s
    left join recent as r
        on r.msisdn = s.msisdn
    left join excluded as e
        on e.msisdn = s.msisdn
    where s.cycle_date = {{ d.date_param('d') }}{{ in_slice('s.msisdn') }}
      and not {{ c.hard_excluded('s', 'e') }}
      and not {{ c.capped(policy, 'r') }}
),

blocked_campaign as (
    {{ c.blocked_campaigns(d) }}
),

candidate as (
{% for k in campaigns %}
    -- {{ k.code }} {{ k.name }}
    select
        h.*
    from (
        select
            s.msisdn,
            s.county_code,
            '{{ k.code }}' as campaign_code,
            '{{ k.product_code }}' as product_code,
            {{ k.priority }} as priority,
            s.stability_type,
            s.spend_tier,
            s.market_segment,
            s.segment_code,
            {% if k.allows_call %}case when s.spend_tier >= {{ call_rule.min_spend_tier }} and s.stability_type in ({% for t in call_rule.stability_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}) then 1 else 0 end{% else %}0{% endif %} as call_eligible,
            {{ 1 if k.allows_sms else 0 }} as sms_allowed,
            {{ 1 if k.fallback else 0 }} as is_fallback
        from contactable as s
        where s.stability_type in ({% for t in k.target.stability_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
          {{- range('spend_tier', k.target.spend_tier) }}
          {{- range('voice_tier', k.target.voice_tier) }}
          {{- range('data_tier', k.target.data_tier) }}
          {{- range('tenure_tier', k.target.tenure_tier) }}
          {%- if k.target.market_segments %}
          and (s.market_segment in ({% for m in k.target.market_segments if m != 'none' %}'{{ m }}'{{ ', ' if not loop.last }}{% else %}''{% endfor %}){% if 'none' in k.target.market_segments %} or s.market_segment is null{% endif %})
          {%- endif %}
          {%- if k.target.bundle == 'bundled' %}
          and s.bundle_kind is not null
          {%- elif k.target.bundle == 'unbundled' %}
          and s.bundle_kind is null
          {%- elif k.target.bundle in ('hard', 'soft') %}
          and s.bundle_kind = '{{ k.target.bundle }}'
          {%- endif %}
          {%- if k.target.bundle_expiring %}
          and exists (
              select 1 from stg_bundle_end as b
              where b.cycle_date = {{ d.date_param('d') }}
                and b.msisdn = s.msisdn
                and b.bundle_type in ({% for t in k.target.bundle_expiring.types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
                and b.end_date <= {{ d.date_param('expiry_' ~ k.target.bundle_expiring.within_days) }})
          {%- endif %}
          {%- if k.target.holds_any_of %}
          and exists (
              select 1 from stg_holding as hp
              where hp.cycle_date = {{ d.date_param('d') }}
                and hp.msisdn = s.msisdn
                and hp.product_code in ({% for p in k.target.holds_any_of %}'{{ p }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.terminal_types %}
          and s.terminal_type in ({% for t in k.target.terminal_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
          {%- endif %}
          {%- if k.target.tags_any %}
          and exists (   -- customer tags (config/tags.yaml), refreshed before the list
              select 1 from mkt_customer_tag as tg
              where tg.msisdn = s.msisdn
                and tg.tag in ({% for t in k.target.tags_any %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.tags_none %}
          and not exists (
              select 1 from mkt_customer_tag as tn
              where tn.msisdn = s.msisdn
                and tn.tag in ({% for t in k.target.tags_none %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.sms_count %}{% set r = k.target.sms_count %}
          {%- if r.min is not none %} and coalesce(s.sms_m0, 0) >= {{ r.min }}{% endif %}
          {%- if r.max is not none %} and coalesce(s.sms_m0, 0) <= {{ r.max }}{% endif %}
          {%- endif %}
          {%- if k.target.anniversary_month %}
          and {{ d.month_of('s.open_date') }} = :d_month
          {%- endif %}
          {%- if k.rule_sql %}
          and s.msisdn in ({{ k.rule_sql }})
          {%- endif %}
          {%- if not ignore_blocks | default(false) %}
          and not {{ c.holds_product(d, 's.msisdn', "'" ~ k.product_code ~ "'") }}
          {%- endif %}
    ) as h
{{ '    union all' if not loop.last }}
{% endfor %}
),

ranked as (
    select
        candidate.*,
        {% if campaigns | selectattr('pinned') | list %}case candidate.campaign_code{% for k in campaigns if k.pinned %} when '{{ k.code }}' then 1{% endfor %} else 0 end{% else %}0{% endif %}
            as pinned,
        {%- if has_values %}
        -- the expected value of the customer's cell; a cell without history reads its campaign's row,
        -- a campaign newer than the offer values its prior (docs/learning.md)
        coalesce(v.expected_value, vk.expected_value,
                 case candidate.campaign_code{% for k in campaigns %} when '{{ k.code }}' then {{ '%.10g' | format(k.prior_value) }}{% endfor %} else 0 end)
            as ev,
        {%- else %}
        0 as ev,
        {%- endif %}
        -- a fallback (care) campaign only takes whom no other campaign offers anything: the
        -- customer's choice set is his other campaigns if he has any, else the fallback
        min(candidate.is_fallback) over (partition by candidate.msisdn) as choice_fallback
    from candidate
    {%- if has_values %}
    left join mkt_offer_value as v
        on v.cycle_date = {{ d.date_param('values_date') }}
       and v.campaign_code = candidate.campaign_code
       and v.stability_type = candidate.stability_type
       and v.spend_tier = candidate.spend_tier
       and v.market_segment = coalesce(candidate.market_segment, '(none)')
    left join mkt_offer_value as vk
        on vk.cycle_date = {{ d.date_param('values_date') }}
       and vk.campaign_code = candidate.campaign_code
       and vk.stability_type = '*'
       and vk.spend_tier = 0
       and vk.market_segment = '*'
    {%- endif %}
    {%- if not ignore_blocks | default(false) %}   {# coverage_gaps.sql: who is targeted before blocks #}
    where not {{ c.campaign_blocked('blocked_campaign', 'candidate.msisdn', 'candidate.campaign_code') }}
    {%- endif %}
),

choice as (   -- the customer's choice set, each campaign's rank under each rule
    select
        ranked.*,
        row_number() over (partition by msisdn order by priority, campaign_code) as fixed_rank,
        row_number() over (partition by msisdn order by ev desc, priority, campaign_code) as ev_rank,
        row_number() over (partition by msisdn order by campaign_code) as code_rank,
        count(*) over (partition by msisdn) as k,
        -- exploration: a draw per customer and day; the explored campaign: a second draw, uniform
        -- over the choice set (its code_rank)
        {{ d.hash32("msisdn || '|" ~ cycle_day ~ "|explore'") }} % 10000 as explore_draw,
        {{ d.hash32("msisdn || '|" ~ cycle_day ~ "|explore_pick'") }} % count(*) over (partition by msisdn) + 1
            as explore_pick
    from ranked
    where is_fallback = choice_fallback
),

{%- if mode == 'blend' %}

blended as (   -- score = w x normalised EV rank + (1 - w) x normalised priority rank, lowest wins
    select
        choice.*,
        row_number() over (partition by msisdn order by
            case when k > 1 then {{ '%.6f' | format(blend_weight) }} * (ev_rank - 1) / {{ d.as_real('k - 1') }}
                 + {{ '%.6f' | format(1 - blend_weight) }} * (fixed_rank - 1) / {{ d.as_real('k - 1') }} else 0 end,
            priority, campaign_code) as greedy_rank
    from choice
),
{%- endif %}

decided as (
    select
        x.*,
        max(case when fixed_rank = 1 then campaign_code end) over (partition by msisdn) as fixed_code,
        max(case when fixed_rank = 1 then pinned end) over (partition by msisdn) as fixed_pinned,
        max(case when ev_rank = 1 then campaign_code end) over (partition by msisdn) as ev_code,
        max(case when {{ 'greedy_rank' if mode == 'blend' else ('ev_rank' if mode == 'learned' else 'fixed_rank') }} = 1
            then campaign_code end) over (partition by msisdn) as greedy_code,
        max(case when code_rank = explore_pick then campaign_code end) over (partition by msisdn) as explore_code
    from {{ 'blended' if mode == 'blend' else 'choice' }} as x
),

arbitrated as (   -- a pinned fixed choice wins in every arm; else explore, else the mode's choice
    select
        decided.*,
        case when fixed_pinned = 1 then fixed_code
             when explore_draw < {{ exploration_bp }} then explore_code
             else greedy_code end as chosen_code,
        case when fixed_pinned = 1 then 'fixed'
             when explore_draw < {{ exploration_bp }} then 'explore'
             else '{{ 'fixed' if mode == 'fixed' else 'learned' }}' end as chosen_arm,
        case when fixed_pinned = 1 then fixed_code else ev_code end as learned_choice
    from decided
),

chosen as (
    select
        arbitrated.*,
        {{ d.hash32("msisdn || '|' || campaign_code || '|" ~ assignment_month ~ "|control'") }} % 10000 as control_draw,
        {{ d.hash32("msisdn || '|' || campaign_code || '|" ~ assignment_month ~ "|variant'") }} % 10000 as variant_draw
    from arbitrated
    where campaign_code = chosen_code
)

select
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    county_code,
    campaign_code,
    product_code,
    priority,
    stability_type,
    spend_tier,
    segment_code,
    case when control_draw < case campaign_code{% for k in campaigns %} when '{{ k.code }}' then {{ k.control_bp }}{% endfor %} else 0 end
        then 1 else 0 end as is_control,
    {% if campaigns | selectattr('variant_cuts') | list %}case{% for k in campaigns if k.variant_cuts %}
        when campaign_code = '{{ k.code }}' then {% if k.variant_cuts | length == 1 %}'{{ k.variant_cuts[0][0] }}'{% else %}case{% for label, cut in k.variant_cuts %} when variant_draw < {{ cut }} then '{{ label }}'{% endfor %} end{% endif %}{% endfor %}
    end{% else %}null{% endif %} as variant,
    call_eligible,
    sms_allowed,
    chosen_arm as arm,
    -- the probability this campaign was the one chosen, given the choice set and the policy:
    -- (1 - e) x [it is the policy's choice] + e / k; a pinned fixed choice is certain
    case when fixed_pinned = 1 then 1.0
         else {{ '%.6f' | format(1 - exploration_bp / 10000) }} * (case when campaign_code = greedy_code then 1 else 0 end)
              + {{ '%.6f' | format(exploration_bp / 10000) }} / {{ d.as_real('k') }} end as propensity,
    fixed_code,
    {% if has_values %}learned_choice{% else %}cast(null as varchar(16)){% endif %} as learned_code
from chosen
