{#- A customer's own columns for segmentation (subscriber, bundles, tenure; no usage), one definition
    for both places they are computed: inside segment_customers.sql when one statement reads the data
    mart and marketing_db, and alone in the data mart (segment_base.sql) when marketing_db is another
    PostgreSQL database and segmentation joins them there to the usage pivot (db.land_query's relay).
    ``d``: the dialect's macros; ``in_slice``: the caller's slice predicate (_slice.sql). -#}

{% macro active_bundle(d, src, in_slice) %}
    -- strongest bundle active at D: hard beats soft
    select
        msisdn,
        max(case when bundle_kind = 'hard' then 2 else 1 end) as strength,
        -- the plan counts hard and soft separately (a customer with both is in both) and package users
        max(case when bundle_kind = 'hard' then 1 else 0 end) as has_hard,
        max(case when bundle_kind = 'soft' then 1 else 0 end) as has_soft,
        max(case when bundle_type = 'package' then 1 else 0 end) as has_package
    from {{ src }}bundle
    where start_date <= {{ d.date_param('d') }}
      and (end_date is null or end_date >= {{ d.date_param('d') }}){{ in_slice('msisdn') }}
    group by msisdn
{%- endmacro %}

{#- the columns, over subscriber ``s`` left joined to active_bundle ``b`` -#}
{% macro columns(d) %}
        s.msisdn,
        s.county_code,
        s.status,
        s.market_segment,
        s.open_date,
        s.customer_name,
        s.terminal_type,
        coalesce(b.has_hard, 0) as has_hard_bundle,
        coalesce(b.has_soft, 0) as has_soft_bundle,
        coalesce(b.has_package, 0) as has_package,
        s.open_date >= {{ d.date_param('m2') }} as is_new,
        (:d_year - {{ d.year('s.open_date') }}) * 12
            + (:d_month - {{ d.month('s.open_date') }})
            - (case when :d_day < {{ d.day('s.open_date') }} then 1 else 0 end) as tenure_months,
        b.strength as bundle_strength
{%- endmacro %}

{#- which subscribers are segmented at D: every one not cancelled, opened by D -#}
{% macro segmented(d, in_slice) -%}
s.status <> 'cancelled'
      and s.open_date <= {{ d.date_param('d') }}{{ in_slice('s.msisdn') }}
{%- endmacro %}
