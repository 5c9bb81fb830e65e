{#- HQ's outcome report, aggregated in the database: one row per cell of campaign × variant ×
    segment type × county × channel for the contacts of the cycles :a .. :b, with the funnel's
    counts. The report's slices (per campaign, per campaign and dimension, across campaigns) are
    sums of these cells, so the report never reads the contacts themselves (30 days of a city's
    contacts are ~100 million rows; the cells are a few thousand). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    campaign_code,
    coalesce(variant, '') as variant,
    {{ d.first_field("coalesce(segment_code, '')", '-') }} as segment_type,
    county_code,
    channel,
    count(*) as contacts,
    sum(case when delivered_at is not null or (channel = 'call' and response is not null)
             then 1 else 0 end) as delivered,
    sum(case when responded_at is not null then 1 else 0 end) as replied,
    sum(case when response in ('accept', 'accepted') then 1 else 0 end) as accepted,
    sum(case when converted_at is not null then 1 else 0 end) as converted
from mkt_contact
where cycle_date >= {{ d.date_param('a') }} and cycle_date <= {{ d.date_param('b') }}
group by campaign_code, coalesce(variant, ''), {{ d.first_field("coalesce(segment_code, '')", '-') }},
         county_code, channel
