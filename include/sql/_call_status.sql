{#- Call-centre outcome classes (economics.md "Call-centre operations"): one definition. -#}
{% macro is_connected(outcome) -%}
    {{ outcome }} in ('accepted', 'refused', 'refused_do_not_call', 'callback')
{%- endmacro %}
{% macro is_dialled(outcome) -%}
    {{ outcome }} is not null
{%- endmacro %}
