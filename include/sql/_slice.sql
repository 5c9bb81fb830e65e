{#- The slice predicate, one definition for every statement that runs as concurrent slices of
    customers (db.land_query): segment_customers.sql, segment_usage.sql, target_list.sql. Which slice
    a customer is in is the dialect's slice_of; every base table of a statement is cut by the same
    rule, so slices never overlap. Nothing when the statement runs whole (n_slices 1). -#}
{% macro in_slice(d, expr, n_slices) %}{% if n_slices > 1 %} and {{ d.slice_of(expr, n_slices) }} = :slice{% endif %}{% endmacro %}
