{#-
  The customers' own columns for segmentation (_segment_base.sql), run alone in the data mart when
  marketing_db is another PostgreSQL database: db.land_query copies each slice's rows into a
  temporary table there, and segment_customers.sql (context ``relay_table``) joins them to the usage
  pivot. Context: src, dialect, n_slices; bind parameters as segment_customers.sql.
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_slice.sql' as sl %}
{% import '_segment_base.sql' as base %}
{% macro in_slice(expr) %}{{ sl.in_slice(d, expr, n_slices) }}{% endmacro %}
with active_bundle as (
{{- base.active_bundle(d, src, in_slice) }}
)
select
{{- base.columns(d) }}
from {{ src }}subscriber as s
left join active_bundle as b
    on b.msisdn = s.msisdn
where {{ base.segmented(d, in_slice) }}
