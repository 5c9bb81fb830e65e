{#- Claim a batch of pending recharge events for one transaction of the agent channel. The claim,
    the decision, the contacts and the queued SMS commit together, so an event is decided exactly
    once: a run that fails rolls its claim back, and a run that overlaps skips what another holds
    (PostgreSQL: skip locked; SQLite: one writer at a time). Oldest first; expired ones are claimed
    too, to be closed with their reason.
    Bind parameters: token, batch_size. -#}
update mkt_agent_event
set claim_token = :token
where event_id in (
    select event_id
    from mkt_agent_event
    where state = 'pending'
    order by event_time, event_id
    limit :batch_size
    {%- if dialect == 'postgresql' %}
    for update skip locked
    {%- endif %}
)
