{#- Every contact rule (contact-policy.md) as one macro, called by every query that applies it: the
    target list (target_list.sql), the coverage report (coverage.sql), the target audit
    (target_audit.sql) and the agent channel's decision (agent_decide.sql).

    Hard rules (never configurable): the data mart's do-not-disturb list and recent marketing
    complaints (stg_exclusion), opt-outs through this system (mkt_opt_out), cancelled subscribers
    (not in the snapshot; checked again here), and nobody is offered a product they already hold
    (stg_holding). Frequency rules (config/contact_policy.yaml): contacts in the rolling window and
    in the calendar month: sms, call, agent, and control — a held-out customer counts as contacted,
    so both arms of a campaign meet the same later marketing (contact-policy.md); not ones that
    never left (skipped, failed, cancelled), nor a call-centre redial or callback of an offer
    already counted (mkt_contact.first_contact_id, qz_outbound/callcentre.py). Per campaign: not the same campaign within the gap
    (control included: they stay out of its measurement), not a campaign the customer refused
    within the block.

    Bind parameters (qz_outbound/policy.py: contact_policy_binds): d (the cycle whose staged
    extracts are read), history_until (contacts before it count), window_start, month_start,
    recent_since, same_campaign_since, refusal_since. `d` in the macros' arguments is the dialect.
    `among`: an optional subquery of msisdns the set is needed for (a small batch). -#}

{#- the frequency rules: real contacts per customer in the window and the month (left-join by msisdn) -#}
{% macro recent_contacts(d) -%}
    select
        msisdn,
        sum(case when cycle_date >= {{ d.date_param('window_start') }} then 1 else 0 end) as in_window,
        sum(case when cycle_date >= {{ d.date_param('month_start') }} then 1 else 0 end) as in_month
    from mkt_contact
    where cycle_date >= {{ d.date_param('recent_since') }}
      and cycle_date < {{ d.date_param('history_until') }}
      and channel in ('sms', 'call', 'agent', 'control')
      and status not in ('skipped', 'failed', 'cancelled')
      and first_contact_id is null   -- a redial or callback is the same offer, not a new contact
    group by msisdn
{%- endmacro %}
{% macro capped(policy, alias) -%}
    (coalesce({{ alias }}.in_window, 0) >= {{ policy.contacts_per_window }}
     or coalesce({{ alias }}.in_month, 0) >= {{ policy.contacts_per_month }})
{%- endmacro %}

{#- opt-outs through this system; `before`: the name of a timestamp bind, only opt-outs recorded before it -#}
{% macro opted_out(before=none) -%}
    select msisdn from mkt_opt_out
    {%- if before %}
    where opted_out_at < :{{ before }}
    {%- endif %}
{%- endmacro %}
{#- the hard exclusions as one set of numbers (left-join by msisdn, then hard_excluded) -#}
{% macro excluded_customers(d) -%}
    -- as a set, so the database anti-joins it (an OR of EXISTS would run per customer)
    select msisdn from stg_exclusion where cycle_date = {{ d.date_param('d') }}
    union
    {{ opted_out() }}
{%- endmacro %}
{#- the staged hard exclusions with their reasons, one row per customer (a customer can be on both) -#}
{% macro exclusion_reasons(d, among=none) -%}
    select
        msisdn,
        max(case when reason = 'dnd' then 1 else 0 end) as dnd,
        max(case when reason = 'complaint' then 1 else 0 end) as complaint
    from stg_exclusion
    where cycle_date = {{ d.date_param('d') }}
    {%- if among %}
      and msisdn in ({{ among }})
    {%- endif %}
    group by msisdn
{%- endmacro %}
{% macro cancelled(customer) -%}
    {{ customer }}.status = 'cancelled'
{%- endmacro %}
{% macro hard_excluded(customer, excluded) -%}
    ({{ excluded }}.msisdn is not null or {{ cancelled(customer) }})
{%- endmacro %}

{#- per campaign: the same campaign within the gap, or a refusal of it within the block (msisdn, campaign_code) -#}
{% macro blocked_campaigns(d, among=none) -%}
    select distinct
        msisdn,
        campaign_code
    from mkt_contact
    where {% if among %}msisdn in ({{ among }})
      and {% endif %}((cycle_date >= {{ d.date_param('same_campaign_since') }} and cycle_date < {{ d.date_param('history_until') }})
           or (response in ('refused', 'refused_do_not_call')
               and responded_at >= {{ d.date_param('refusal_since') }}))
{%- endmacro %}
{% macro campaign_blocked(blocked, msisdn, campaign_code) -%}
    exists (
        select 1 from {{ blocked }} as b
        where b.msisdn = {{ msisdn }}
          and b.campaign_code = {{ campaign_code }})
{%- endmacro %}

{#- the products each customer holds, staged for the cycle (may repeat a pair) -#}
{% macro holdings(d) -%}
    select
        msisdn,
        product_code
    from stg_holding
    where cycle_date = {{ d.date_param('d') }}
{%- endmacro %}
{#- nobody is offered a product they already hold -#}
{% macro holds_product(d, msisdn, product_code) -%}
    exists (
        select 1 from ({{ holdings(d) }}) as held
        where held.msisdn = {{ msisdn }}
          and held.product_code = {{ product_code }})
{%- endmacro %}
