{#- Who may be contacted this cycle at all (contact-policy.md): one definition, imported by the
    target list and the coverage report. Hard rules (never configurable): the data mart's
    do-not-disturb list and recent marketing complaints (stg_exclusion), opt-outs through this
    system (mkt_opt_out), cancelled subscribers (not in the snapshot; checked again here).
    Frequency rules (config/contact_policy.yaml): real contacts (sms, call, agent; not control,
    not ones that never left) in the rolling window and in the calendar month.
    Bind parameters: d, window_start, month_start, recent_since. -#}
{% macro recent_contacts(d) -%}
    select
        msisdn,
        sum(case when cycle_date >= {{ d.date_param('window_start') }} then 1 else 0 end) as in_window,
        sum(case when cycle_date >= {{ d.date_param('month_start') }} then 1 else 0 end) as in_month
    from mkt_contact
    where cycle_date >= {{ d.date_param('recent_since') }}
      and cycle_date < {{ d.date_param('d') }}
      and channel in ('sms', 'call', 'agent')
      and status not in ('skipped', 'failed', 'cancelled')
    group by msisdn
{%- endmacro %}
{% macro hard_excluded(d, alias) -%}
    (exists (select 1 from stg_exclusion as x where x.cycle_date = {{ d.date_param('d') }} and x.msisdn = {{ alias }}.msisdn)
     or exists (select 1 from mkt_opt_out as o where o.msisdn = {{ alias }}.msisdn)
     or {{ alias }}.status = 'cancelled')
{%- endmacro %}
{% macro capped(policy, alias) -%}
    (coalesce({{ alias }}.in_window, 0) >= {{ policy.contacts_per_window }}
     or coalesce({{ alias }}.in_month, 0) >= {{ policy.contacts_per_month }})
{%- endmacro %}
