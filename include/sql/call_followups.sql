{#- A county's due call-centre follow-ups onto the cycle's call list (economics.md "Call-centre
    operations"; qz_outbound/callcentre.py): each call whose latest uploaded outcome is no_answer or
    busy (a redial, at most :max_redials per offer) or callback (on the date the agent noted, else
    any later day: the caller runs this only on working days, so that is the next working day; at
    most :max_callbacks per offer) returns as a new 'call' row of the cycle with attempt + 1 and the
    offer's first contact, callbacks first, then redials, oldest call first, at most :capacity.
    Never for someone who since opted out, is on the DND list or complained (stg_exclusion), left,
    holds the product, converted, refused or accepted, or whose number was reported wrong, nor for
    a paused campaign. Idempotent: a follow-up already listed is a later attempt, so its call is no
    longer due, and the one-row-per-customer-per-cycle key holds (on conflict do nothing).
    Bind parameters: d, ymd, county, capacity, now, day_start (d 00:00 Asia/Shanghai), since,
    since_ts (oldest call or noted date still followed up), wrong_since, max_redials, max_callbacks. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
insert into mkt_contact (
    contact_id, cycle_date, msisdn, county_code, campaign_code, product_code, variant, channel,
    segment_code, status, created_at, attempt, first_contact_id, call_kind
)
select
    -- the same id publish_county.sql gives the customer's row of the cycle
    'C' || :ymd || '-' || {{ d.lpad0('(' ~ d.as_bigint('msisdn') ~ ' * 48271 + 12345) % 100000000000', 11) }},
    {{ d.date_param('d') }},
    msisdn, county_code, campaign_code, product_code, null, 'call', segment_code, 'planned', :now,
    attempt + 1, root_id, kind
from (
    select
        f.*,
        row_number() over (order by f.kind_rank, f.called_at, f.contact_id) as call_rank
    from (
        select
            c.contact_id,
            c.msisdn,
            c.county_code,
            c.campaign_code,
            c.product_code,
            c.segment_code,
            coalesce(c.attempt, 1) as attempt,
            coalesce(c.first_contact_id, c.contact_id) as root_id,
            case when o.outcome = 'callback' then 'callback' else 'redial' end as kind,
            case when o.outcome = 'callback' then 0 else 1 end as kind_rank,
            o.called_at,
            -- one follow-up per customer (two offers both due: the first in the order)
            row_number() over (partition by c.msisdn
                               order by case when o.outcome = 'callback' then 0 else 1 end, o.called_at,
                                        c.contact_id) as per_customer
        from mkt_contact as c
        join (
            select contact_id, outcome, called_at, callback_on,
                   row_number() over (partition by contact_id order by called_at desc, outcome) as rn
            from mkt_call_outcome
            where county_code = :county
              and cycle_date >= {{ d.date_param('scan_since') }}
        ) as o
            on o.contact_id = c.contact_id and o.rn = 1
        join mkt_segment_snapshot as s
            on s.cycle_date = {{ d.date_param('d') }} and s.msisdn = c.msisdn
        left join (
            {{ c.excluded_customers(d) }}
        ) as e
            on e.msisdn = c.msisdn
        where c.county_code = :county
          and c.channel = 'call'
          and c.cycle_date < {{ d.date_param('d') }}
          and c.converted_at is null
          and not {{ c.hard_excluded('s', 'e') }}
          and (
              (o.outcome in ('no_answer', 'busy')
               and o.called_at < :day_start and o.called_at >= :since_ts
               and (select count(*) from mkt_contact as x
                    where x.first_contact_id = coalesce(c.first_contact_id, c.contact_id)
                      and x.call_kind = 'redial') < :max_redials)
              or
              (o.outcome = 'callback'
               and ((o.callback_on is null and o.called_at < :day_start and o.called_at >= :since_ts)
                    or (o.callback_on <= {{ d.date_param('d') }} and o.callback_on >= {{ d.date_param('since') }}))
               and (select count(*) from mkt_contact as x
                    where x.first_contact_id = coalesce(c.first_contact_id, c.contact_id)
                      and x.call_kind = 'callback') < :max_callbacks)
          )
          -- not followed up already (a later attempt of the offer exists)
          and not exists (
              select 1 from mkt_contact as l
              where l.first_contact_id = coalesce(c.first_contact_id, c.contact_id)
                and l.attempt > coalesce(c.attempt, 1))
          -- since this call was listed: no refusal, acceptance or conversion anywhere
          and not exists (
              select 1 from mkt_contact as x
              where x.msisdn = c.msisdn
                and ((x.response in ('refused', 'refused_do_not_call', 'accept', 'accepted')
                      and x.responded_at >= c.created_at)
                     or x.converted_at >= c.created_at))
          and not exists (
              select 1 from mkt_call_outcome as r
              where r.msisdn = c.msisdn
                and r.outcome in ('refused', 'refused_do_not_call', 'accepted')
                and r.called_at >= c.created_at)
          and not {{ c.holds_product(d, 'c.msisdn', 'c.product_code') }}
          and not exists (
              select 1 from mkt_call_outcome as w
              where w.msisdn = c.msisdn
                and w.outcome = 'wrong_number'
                and w.called_at >= :wrong_since)
          and not exists (
              select 1 from mkt_campaign_pause as p
              where p.campaign_code = c.campaign_code)
    ) as f
    where f.per_customer = 1
) as due
where call_rank <= :capacity
on conflict do nothing
