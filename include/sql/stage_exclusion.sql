{#- Customers the data mart says must never be contacted, staged into marketing_db for the cycle:
    the do-not-disturb list (whenever added: it applies now) and marketing complaints in the
    last :complaint_since days. Runs in the data mart. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select distinct
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    'dnd' as reason
from {{ src }}dnd_list
union all
select distinct
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    'complaint' as reason
from {{ src }}complaint
where category in ('marketing_sms', 'marketing_call')
  and complaint_time >= {{ d.ts_param('complaint_since') }}
