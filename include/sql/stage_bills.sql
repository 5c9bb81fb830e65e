{#- One month's bills from the data mart (usage_monthly), for stg_bill. Bind parameter: month. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select msisdn, month, spend_yuan
from {{ src }}usage_monthly
where month = {{ d.date_param('month') }}
