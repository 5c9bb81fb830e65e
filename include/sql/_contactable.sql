{#- Who may be contacted this cycle at all (contact-policy.md): one definition, imported by the
    target list and the coverage report. Hard rules (never configurable): the data mart's
    do-not-disturb list and recent marketing complaints (stg_exclusion), opt-outs through this
    system (mkt_opt_out), cancelled subscribers (not in the snapshot; checked again here).
    Frequency rules (config/contact_policy.yaml): contacts in the rolling window and in the
    calendar month: sms, call, agent, and control — a held-out customer counts as contacted, so
    both arms of a campaign meet the same later marketing (contact-policy.md); not ones that
    never left (skipped, failed, cancelled), nor a call-centre redial or callback of an offer
    already counted (mkt_contact.first_contact_id, qz_outbound/callcentre.py).
    Bind parameters: d, window_start, month_start, recent_since.
    Users left-join `excluded_customers` and `recent_contacts` by msisdn. -#}
{% macro recent_contacts(d) -%}
    select
        msisdn,
        sum(case when cycle_date >= {{ d.date_param('window_start') }} then 1 else 0 end) as in_window,
        sum(case when cycle_date >= {{ d.date_param('month_start') }} then 1 else 0 end) as in_month
    from mkt_contact
    where cycle_date >= {{ d.date_param('recent_since') }}
      and cycle_date < {{ d.date_param('d') }}
      and channel in ('sms', 'call', 'agent', 'control')
      and status not in ('skipped', 'failed', 'cancelled')
      and first_contact_id is null   -- a redial or callback is the same offer, not a new contact
    group by msisdn
{%- endmacro %}
{% macro excluded_customers(d) -%}
    -- as a set, so the database anti-joins it (an OR of EXISTS would run per customer)
    select msisdn from stg_exclusion where cycle_date = {{ d.date_param('d') }}
    union
    select msisdn from mkt_opt_out
{%- endmacro %}
{% macro hard_excluded(customer, excluded) -%}
    ({{ excluded }}.msisdn is not null or {{ customer }}.status = 'cancelled')
{%- endmacro %}
{% macro capped(policy, alias) -%}
    (coalesce({{ alias }}.in_window, 0) >= {{ policy.contacts_per_window }}
     or coalesce({{ alias }}.in_month, 0) >= {{ policy.contacts_per_month }})
{%- endmacro %}
