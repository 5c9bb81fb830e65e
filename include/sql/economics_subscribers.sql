{#- The latest subscriber snapshot's status and market segment, for stg_subscriber (economics:
    retention per arm, the market slice). -#}
select msisdn, status, market_segment
from {{ src }}subscriber
