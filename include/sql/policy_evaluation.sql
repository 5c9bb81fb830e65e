{#- The offline evaluation's sums (docs/learning.md "Offline evaluation and guard rails"), one row per
    logged cycle of :a .. :b. The rows replayed: the target list's treated customers (control customers
    are not offered anything) with a propensity (the arbitration log; null before the learning loop)
    and a first-attempt contact of the cycle for the logged campaign (an offer actually made), valued
    by the cycle's mkt_offer_value for that campaign.

    Per row i: p = propensity, w_f = 1[fixed_code = logged] / p, w_l = 1[learned choice = logged] / p
    (the learned choice is learned_code, the fixed choice where the learned policy had none), and
    reward r = (converted - baseline) x value_per_conversion - expected_cost, yuan. baseline is the
    conversion rate of the cycle's control customers of the same campaign, stability type and spend
    tier (with `baseline` set; 0 otherwise): a conversion that would have happened anyway earns nothing.
    value_per_conversion and expected_cost are per campaign; the cells' mean is taken.

    Returned per logged cycle x campaign x stability type x spend tier (a few hundred rows at most):
    counts and the sums (of w, w^2, w r, w^2 r, w^2 r^2 per policy, of the paired difference
    d = (w_l - w_f) r and d^2, and the cross sums for the self-normalised difference) from which the
    estimates and their variances are computed, with the group's value per conversion and its control
    baseline (customers, conversions): the baseline is itself estimated, and its sampling variance is
    added to the estimates' (evaluation.py). No customer data leaves the database. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
with treated as (
    select t.cycle_date, t.msisdn, t.campaign_code, t.stability_type, t.spend_tier,
           case when t.fixed_code = t.campaign_code then 1.0 / t.propensity else 0.0 end as wf,
           case when coalesce(t.learned_code, t.fixed_code) = t.campaign_code
                then 1.0 / t.propensity else 0.0 end as wl
    from mkt_target as t
    where t.cycle_date >= :a and t.cycle_date <= :b
      and t.is_control = 0
      and t.propensity is not null and t.propensity > 0
),
outcome as (
    select c.cycle_date, c.msisdn, c.campaign_code,
           max(case when c.converted_at is not null then 1 else 0 end) as converted
    from mkt_contact as c
    where c.cycle_date >= :a and c.cycle_date <= :b
      and c.first_contact_id is null
      and c.channel <> 'control'
    group by c.cycle_date, c.msisdn, c.campaign_code
),
{%- if baseline %}
base as (
    select t.cycle_date, t.campaign_code, t.stability_type, t.spend_tier,
           avg(case when c.converted_at is not null then 1.0 else 0.0 end) as rate,
           count(*) as base_n,
           sum(case when c.converted_at is not null then 1 else 0 end) as base_conv
    from mkt_target as t
    join mkt_contact as c
      on c.cycle_date = t.cycle_date and c.msisdn = t.msisdn and c.channel = 'control'
    where t.cycle_date >= :a and t.cycle_date <= :b and t.is_control = 1
    group by t.cycle_date, t.campaign_code, t.stability_type, t.spend_tier
),
{%- endif %}
offer_value as (
    select cycle_date, campaign_code, avg(value_per_conversion) as vpc, avg(expected_cost) as cost
    from mkt_offer_value
    where cycle_date >= :a and cycle_date <= :b
    group by cycle_date, campaign_code
),
replay as (
    select tr.cycle_date, tr.campaign_code, tr.stability_type, tr.spend_tier, tr.wf, tr.wl, v.vpc,
           {% if baseline %}coalesce(b.base_n, 0){% else %}0{% endif %} as base_n,
           {% if baseline %}coalesce(b.base_conv, 0){% else %}0{% endif %} as base_conv,
           (o.converted - {% if baseline %}coalesce(b.rate, 0.0){% else %}0.0{% endif %}) * v.vpc - v.cost as r
    from treated as tr
    join outcome as o
      on o.cycle_date = tr.cycle_date and o.msisdn = tr.msisdn and o.campaign_code = tr.campaign_code
    join offer_value as v
      on v.cycle_date = tr.cycle_date and v.campaign_code = tr.campaign_code
{%- if baseline %}
    left join base as b
      on b.cycle_date = tr.cycle_date and b.campaign_code = tr.campaign_code
     and b.stability_type = tr.stability_type and b.spend_tier = tr.spend_tier
{%- endif %}
)
select cycle_date, campaign_code, stability_type, spend_tier,
       max(vpc) as vpc, max(base_n) as base_n, max(base_conv) as base_conv,
       count(*) as n,
       sum(case when wf > 0 then 1 else 0 end) as matched_f,
       sum(case when wl > 0 then 1 else 0 end) as matched_l,
       sum(case when wl <> wf then 1 else 0 end) as differing,
       sum(wf) as s_wf, sum(wf * wf) as s_wf2, sum(wf * r) as s_wfr, sum(wf * wf * r) as s_wf2r,
       sum(wf * wf * r * r) as s_wf2r2,
       sum(wl) as s_wl, sum(wl * wl) as s_wl2, sum(wl * r) as s_wlr, sum(wl * wl * r) as s_wl2r,
       sum(wl * wl * r * r) as s_wl2r2,
       sum((wl - wf) * r) as s_d, sum((wl - wf) * (wl - wf) * r * r) as s_d2,
       sum(wl * wf) as s_wlf, sum(wl * wf * r) as s_wlfr, sum(wl * wf * r * r) as s_wlfr2
from replay
group by cycle_date, campaign_code, stability_type, spend_tier
order by cycle_date, campaign_code, stability_type, spend_tier
