{#- The bill windows of economics.md: per contact, the sum of its customer's bills over the
    before-months (the `before` complete months ahead of the contact's month m0) and over the
    after-months (up to `after` months after m0); m0 itself is in neither. One definition, used by
    HQ's campaign economics (economics_slices.sql) and a customer's trajectory (trajectory.sql).
    `contacts`: a relation with contact_id, msisdn and m0 (the contact's month, first day). -#}
{% macro bills_before_after(d, contacts, before, after) -%}
    select c.contact_id,
           sum(case when b.month < c.m0 then b.spend_yuan else 0 end) as before_sum,
           sum(case when b.month > c.m0 then b.spend_yuan else 0 end) as after_sum
    from {{ contacts }} as c
    join stg_bill as b
      on b.msisdn = c.msisdn
     and b.month >= {{ d.month_start('c.m0', -before) }}
     and b.month <= {{ d.month_start('c.m0', after) }}
     and b.month <> c.m0
    group by c.contact_id
{%- endmacro %}
