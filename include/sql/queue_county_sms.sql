{#- Queue one county's SMS contacts of a cycle into the outbox, as set work.
    The texts were rendered once per campaign template (they depend only on campaign-level values)
    into the temporary tables tmp_sms_render (campaign_code, template, state, text, parts, reason)
    and tmp_sms_render_part (campaign_code, template, part_no, esm_class, data_coding, payload);
    `variants` maps each contact's A/B label to its template. Opted-out customers are recorded as
    'skipped', a text that did not render as 'failed' with the reason; nothing already in the outbox
    is touched (a re-run never re-renders a message that may have been sent).
    A contact still 'planned' has no message yet: the status step moves it to its message's state in
    the same transaction (so the set needs no anti-join against the whole outbox).
    step: outbox | parts | status.  Bind parameters: d, county, now. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% if step == 'outbox' %}
insert into sms_outbox (contact_id, cycle_date, county_code, msisdn, campaign_code, template, text, parts,
                        state, reason, claim_token, queued_at, submitted_at, done_at)
select
    c.contact_id, c.cycle_date, c.county_code, c.msisdn, c.campaign_code, r.template,
    case when o.msisdn is null then r.text end,
    case when o.msisdn is null then r.parts else 0 end,
    case when o.msisdn is not null then 'skipped' else r.state end,
    case when o.msisdn is not null then 'opt_out' else r.reason end,
    null, :now, null, null
from mkt_contact as c
join tmp_sms_render as r
  on r.campaign_code = c.campaign_code and r.variant = coalesce(c.variant, '')
left join mkt_opt_out as o on o.msisdn = c.msisdn
where c.cycle_date = {{ d.date_param('d') }}
  and c.county_code = :county
  and c.channel = 'sms'
  and c.status = 'planned'
on conflict do nothing
{% elif step == 'parts' %}
-- the same customers the outbox step took as 'queued' (same conditions, same transaction)
insert into sms_part (contact_id, part_no, esm_class, data_coding, payload, state, attempts)
select c.contact_id, p.part_no, p.esm_class, p.data_coding, p.payload, 'pending', 0
from mkt_contact as c
join tmp_sms_render as r
  on r.campaign_code = c.campaign_code and r.variant = coalesce(c.variant, '')
join tmp_sms_render_part as p on p.campaign_code = r.campaign_code and p.template = r.template
left join mkt_opt_out as o on o.msisdn = c.msisdn
where c.cycle_date = {{ d.date_param('d') }}
  and c.county_code = :county
  and c.channel = 'sms'
  and c.status = 'planned'
  and r.state = 'queued'
  and o.msisdn is null
on conflict do nothing
{% elif step == 'status' %}
update mkt_contact
set status = case when exists (select 1 from mkt_opt_out as o where o.msisdn = mkt_contact.msisdn)
                  then 'skipped' else r.state end
from tmp_sms_render as r
where r.campaign_code = mkt_contact.campaign_code
  and r.variant = coalesce(mkt_contact.variant, '')
  and mkt_contact.cycle_date = {{ d.date_param('d') }}
  and mkt_contact.county_code = :county
  and mkt_contact.channel = 'sms'
  and mkt_contact.status = 'planned'
{% endif %}
