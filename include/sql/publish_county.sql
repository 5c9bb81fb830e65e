{#- Publish one county's share of the validated target list into the contact history:
    control customers are recorded and not contacted; call-eligible customers are phoned in
    priority order up to the county's daily call capacity; the rest go by SMS where the campaign
    allows it, otherwise they wait (no row: a later cycle picks them up). Campaigns validation held
    back for the cycle (mkt_target_hold: a check about that campaign failed) are left out: their
    rows stay in mkt_target with the reason in mkt_target_hold, nobody of them is contacted; so are
    the rows the budget step excluded (mkt_budget_cut, reason budget).
    Idempotent and safe to run twice at once: a customer already recorded for the cycle keeps
    the row they have (unique (cycle_date, msisdn) for daily channels, ON CONFLICT DO NOTHING).
    Bind parameters: d, ymd, county, capacity (what the day's redials and callbacks left), now,
    wrong_since. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_order.sql' as o %}
insert into mkt_contact (
    contact_id,
    cycle_date,
    msisdn,
    county_code,
    campaign_code,
    product_code,
    variant,
    channel,
    segment_code,
    status,
    created_at
)
select
    -- deterministic and not the number itself: an affine bijection on 11-digit numbers
    'C' || :ymd || '-' || {{ d.lpad0('(' ~ d.as_bigint('msisdn') ~ ' * 48271 + 12345) % 100000000000', 11) }} as contact_id,
    cycle_date,
    msisdn,
    county_code,
    campaign_code,
    product_code,
    case when channel = 'sms' then variant end as variant,
    channel,
    segment_code,
    case when channel = 'control' then 'held_out' else 'planned' end as status,
    :now as created_at
from (
    select
        ranked.*,
        case
            when is_control = 1 then 'control'
            when call_rank is not null and call_rank <= :capacity then 'call'
            when sms_allowed = 1 then 'sms'
        end as channel
    from (
        select
            t.*,
            case when t.callable = 1 then
                row_number() over (
                    partition by t.callable
                    order by {{ o.call_order('t') }})
            end as call_rank
        from (
            select
                t.*,
                -- a number reported wrong_number is not phoned for a while (qz_outbound/callcentre.py);
                -- SMS stay allowed
                case when t.call_eligible = 1 and t.is_control = 0 and not exists (
                    select 1 from mkt_call_outcome as w
                    where w.msisdn = t.msisdn and w.outcome = 'wrong_number' and w.called_at >= :wrong_since)
                then 1 else 0 end as callable
            from mkt_target as t
        ) as t
        where t.cycle_date = {{ d.date_param('d') }}
          and t.county_code = :county
          and not exists (
              select 1 from mkt_target_hold as h
              where h.cycle_date = t.cycle_date
                and h.campaign_code = t.campaign_code)
          -- over its monthly budget (budget_cut.sql): excluded with reason budget, never published
          and not exists (
              select 1 from mkt_budget_cut as b
              where b.cycle_date = t.cycle_date
                and b.msisdn = t.msisdn)
    ) as ranked
) as split
where channel is not null
on conflict do nothing
