{#- The call centre's order of priority, defined once: publish_county.sql fills a county's call
    capacity in this order and call_list.sql lists the calls in it. -#}
{% macro call_order(t) -%}
{{ t }}.priority, {{ t }}.spend_tier desc, {{ t }}.msisdn
{%- endmacro %}
