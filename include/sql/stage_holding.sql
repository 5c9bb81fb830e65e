{#- Products each customer holds at D: nobody is offered what they already have. Runs in the data mart. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select distinct
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    product_code
from {{ src }}product_subscription
where start_date <= {{ d.date_param('d') }}
  and (end_date is null or end_date >= {{ d.date_param('d') }})
