{#- HQ's outcome report, aggregated in the database: one row per cell of campaign × variant ×
    segment type × county × channel × market segment × terminal type for the contacts of the cycles :a .. :b, with the funnel's
    counts (a call is delivered when it connected: economics.md "Call-centre operations"). The report's slices (per campaign, per campaign and dimension, across campaigns) are
    sums of these cells, so the report never reads the contacts themselves (30 days of a city's
    contacts are ~100 million rows; the cells are a few thousand). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_status.sql' as s %}
select
    campaign_code,
    coalesce(variant, '') as variant,
    {{ d.first_field("coalesce(segment_code, '')", '-') }} as segment_type,
    county_code,
    channel,
    market_segment,
    terminal_type,
    -- a redial or callback (first_contact_id set) is the same offer again: not a new contact
    sum(case when first_contact_id is null then 1 else 0 end) as contacts,
    -- a call is delivered when it connected (no_answer, busy, wrong_number: dialled, not
    -- delivered); a callback row's offer was delivered by the call that asked for it
    sum(case when delivered_at is not null
              or (channel = 'call' and {{ s.is_connected('response') }} and coalesce(call_kind, '') <> 'callback')
             then 1 else 0 end) as delivered,
    sum(case when responded_at is not null and first_contact_id is null then 1 else 0 end) as replied,
    sum(case when response in ('accept', 'accepted') then 1 else 0 end) as accepted,
    sum(case when converted_at is not null then 1 else 0 end) as converted
from (
    -- the customer's market segment and terminal type when chosen (the cycle's snapshot; a cycle
    -- whose snapshot retention dropped, or segmented before revision 0004_plan, reads as unknown)
    select
        c.*,
        coalesce(s.market_segment, '(none)') as market_segment,
        coalesce(s.terminal_type, 'unknown') as terminal_type
    from mkt_contact as c
    left join mkt_segment_snapshot as s
        on s.cycle_date = c.cycle_date
       and s.msisdn = c.msisdn
) as contact
where cycle_date >= {{ d.date_param('a') }} and cycle_date <= {{ d.date_param('b') }}
group by campaign_code, coalesce(variant, ''), {{ d.first_field("coalesce(segment_code, '')", '-') }},
         county_code, channel, market_segment, terminal_type
