{#- Bundles active at D that have an end date (contract-renewal campaigns target those ending soon). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    bundle_type,
    end_date
from {{ src }}bundle
where start_date <= {{ d.date_param('d') }}
  and end_date is not null
  and end_date >= {{ d.date_param('d') }}
