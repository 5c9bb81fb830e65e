{#- County call outcomes (mkt_call_outcome) into the contact history: each call contact takes its
    latest reported outcome (a later 'accepted' supersedes an earlier 'callback'). Idempotent: a
    contact already showing its latest outcome is not touched, so outcomes arriving late, twice or
    out of order leave the same history. The targeting reads response/responded_at (refusals). -#}
update mkt_contact
set response = o.outcome,
    responded_at = o.called_at,
    status = 'called'
from (
    select contact_id, outcome, called_at,
           row_number() over (partition by contact_id order by called_at desc, outcome) as rn
    from mkt_call_outcome
) as o
where o.rn = 1
  and o.contact_id = mkt_contact.contact_id
  and mkt_contact.channel = 'call'
  and (mkt_contact.responded_at is null
       or coalesce(mkt_contact.response, '') <> o.outcome
       or mkt_contact.responded_at < o.called_at)
