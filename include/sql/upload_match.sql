{#- One county upload, matched as set work. qz_outbound.portal.uploads stages the file's distinct
    contact ids in the temporary table tmp_upload_id (contact_id), so a list of any length is a
    join, never an IN list of bind parameters (SQLite refuses more than 32,766 of them).
    step: contacts | loaded | opt_out.  Bind parameters (opt_out): upload_id, now. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d -%}
{% if step == 'contacts' %}
-- the contacts the file names: the row checks need county, channel and cycle of each
select
    c.contact_id,
    c.county_code,
    c.channel,
    c.cycle_date,
    c.msisdn,
    c.campaign_code
from tmp_upload_id as t
join mkt_contact as c
    on c.contact_id = t.contact_id
{% elif step == 'loaded' %}
-- outcomes earlier uploads loaded for those contacts: a row already there is not loaded again
select
    o.contact_id,
    o.outcome,
    o.called_at,
    o.called_at_given
from tmp_upload_id as t
join mkt_call_outcome as o
    on o.contact_id = t.contact_id
{% elif step == 'opt_out' %}
-- refused_do_not_call is an opt-out at once; a number already opted out keeps its first record.
-- on conflict, not "where not exists": two uploads (or an SMS reply) opting out one number at once
-- must not collide on the key (the same rule as qz_outbound/optout.py's record_opt_out)
insert into mkt_opt_out (msisdn, opted_out_at, source, detail)
select distinct
    o.msisdn,
    {{ d.ts_param('now') }},
    'call_outcome',
    :upload_id
from mkt_call_outcome as o
where o.upload_id = :upload_id
    and o.outcome = 'refused_do_not_call'
on conflict (msisdn) do nothing
{% endif %}
