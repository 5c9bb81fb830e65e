{#- Apply a batch of stored delivery receipts to the outbox and the contact history, as set work.
    The receiver staged the batch in temporary tables:
      tmp_receipt      (inbound_id, msisdn, stat, new_state)   one row per receipt; new_state is
                       'delivered' / 'undelivered' for a final stat, null for an intermediate one
      tmp_receipt_key  (inbound_id, ident, k_dec, k_hex)       each id the receipt quotes, as given
                       and read as a decimal and as a hexadecimal number (decimal digits)
    and fills tmp_receipt_match (inbound_id, outcome, contact_id, part_no, mid, mid_dec, mid_hex).
    step: match | reduce | parts | recompute | outbox | contact | inbound.  Bind parameters: now.
    Context (recompute): state_rules, state_otherwise (qz_outbound.sms.outbox). -#}
{% if step == 'match' %}
-- A receipt finds its part by the same text first, then the same number in the same base,
-- then in the other base; within the best tier, parts of the receipt's own handset win.
-- One part: matched; several: ambiguous (kept for a person); none: decided by the caller.
-- Run twice: `first` (the id as given, which finds most) and then the other tiers for the
-- receipts the first pass did not find.
insert into tmp_receipt_match (inbound_id, outcome, contact_id, part_no)
with k as (
    select * from tmp_receipt_key
{%- if not first %}
    where inbound_id not in (select inbound_id from tmp_receipt_match)
{%- endif %}
),
cand as (
{%- if first %}
    select k.inbound_id, p.contact_id, p.part_no, 1 as tier
    from k join sms_part as p on p.message_id = k.ident
{%- else %}
    select k.inbound_id, p.contact_id, p.part_no, 2 as tier from k join sms_part as p on p.mid_dec = k.k_dec
    union all
    select k.inbound_id, p.contact_id, p.part_no, 2 from k join sms_part as p on p.mid_hex = k.k_hex
    union all
    select k.inbound_id, p.contact_id, p.part_no, 3 from k join sms_part as p on p.mid_hex = k.k_dec
    union all
    select k.inbound_id, p.contact_id, p.part_no, 3 from k join sms_part as p on p.mid_dec = k.k_hex
{%- endif %}
),
best as (
    select inbound_id, min(tier) as tier from cand group by inbound_id
),
top as (
    select distinct c.inbound_id, c.contact_id, c.part_no,
           case when o.msisdn = r.msisdn then 1 else 0 end as same_number
    from cand as c
    join best as b on b.inbound_id = c.inbound_id and b.tier = c.tier
    join sms_outbox as o on o.contact_id = c.contact_id
    join tmp_receipt as r on r.inbound_id = c.inbound_id
),
pref as (
    select inbound_id, max(same_number) as has_same from top group by inbound_id
)
select t.inbound_id,
       case when count(*) = 1 then 'matched' else 'ambiguous' end,
       case when count(*) = 1 then min(t.contact_id) end,
       case when count(*) = 1 then min(t.part_no) end
from top as t
join pref as f on f.inbound_id = t.inbound_id
where f.has_same = 0 or t.same_number = 1
group by t.inbound_id
{% elif step == 'reduce' %}
-- Several receipts for one part in a batch (ENROUTE, then DELIVRD): the latest final one sets
-- the state, the latest one its stat and time; an intermediate receipt never moves the state.
insert into tmp_receipt_part (contact_id, part_no, new_state, stat, receipt_at, first_at, mid, mid_dec, mid_hex)
select contact_id, part_no, final_state, stat, received_at, first_at, mid, mid_dec, mid_hex
from (
    select m.contact_id, m.part_no, t.stat, i.received_at,
           row_number() over (partition by m.contact_id, m.part_no order by m.inbound_id desc) as latest,
           first_value(t.new_state) over (partition by m.contact_id, m.part_no
                                          order by case when t.new_state is null then 1 else 0 end,
                                                   m.inbound_id desc) as final_state,
           min(i.received_at) over (partition by m.contact_id, m.part_no) as first_at,
           max(m.mid) over (partition by m.contact_id, m.part_no) as mid,
           max(m.mid_dec) over (partition by m.contact_id, m.part_no) as mid_dec,
           max(m.mid_hex) over (partition by m.contact_id, m.part_no) as mid_hex
    from tmp_receipt_match as m
    join tmp_receipt as t on t.inbound_id = m.inbound_id
    join sms_inbound as i on i.inbound_id = m.inbound_id
    where m.outcome = 'matched'
) as r
where latest = 1
{% elif step == 'parts' %}
update sms_part
set state = coalesce(u.new_state, sms_part.state),
    receipt_stat = u.stat,
    receipt_at = u.receipt_at,
    message_id = coalesce(sms_part.message_id, u.mid),
    mid_dec = coalesce(sms_part.mid_dec, u.mid_dec),
    mid_hex = coalesce(sms_part.mid_hex, u.mid_hex),
    accepted_at = coalesce(sms_part.accepted_at, u.first_at)
from tmp_receipt_part as u
where sms_part.contact_id = u.contact_id and sms_part.part_no = u.part_no
{% elif step == 'recompute' %}
-- Each touched message's state derived from all its parts, by the rules derive_state applies
-- (qz_outbound.sms.outbox.MESSAGE_STATE_RULES, rendered here in their order); kept only where the
-- message moved and no sender holds it.
insert into tmp_message_state (contact_id, state, done_at, sent_at)
select s.contact_id, s.state,
       case when s.state in ('delivered', 'undelivered') then s.done_at end,
       s.sent_at
from (
    select p.contact_id,
           case
           {%- for state, quantifier, among in state_rules %}
                when sum(case when p.state in ({% for a in among %}'{{ a }}'{{ ', ' if not loop.last }}{% endfor %}) then 1 else 0 end) {{ '> 0' if quantifier == 'any' else '= count(*)' }} then '{{ state }}'
           {%- endfor %}
                else '{{ state_otherwise }}' end as state,
           max(p.receipt_at) as done_at,
           min(p.accepted_at) as sent_at
    from sms_part as p
    where p.contact_id in (select distinct contact_id from tmp_receipt_part)
    group by p.contact_id
) as s
join sms_outbox as o on o.contact_id = s.contact_id
where s.state <> 'queued'
  and o.state not in ('queued', 'sending')
  and o.state <> s.state
{% elif step == 'outbox' %}
update sms_outbox
set state = s.state,
    done_at = s.done_at,
    submitted_at = coalesce(sms_outbox.submitted_at, s.sent_at, :now)
from tmp_message_state as s
where sms_outbox.contact_id = s.contact_id
{% elif step == 'contact' %}
update mkt_contact
set status = s.state,
    delivered_at = case when s.state = 'delivered' then s.done_at else mkt_contact.delivered_at end,
    sent_at = coalesce(mkt_contact.sent_at, s.sent_at, :now)
from tmp_message_state as s
where mkt_contact.contact_id = s.contact_id
{% elif step == 'inbound' %}
update sms_inbound
set processed_at = :now,
    outcome = m.outcome,
    contact_id = m.contact_id,
    part_no = m.part_no
from tmp_receipt_match as m
where sms_inbound.inbound_id = m.inbound_id
{% endif %}
