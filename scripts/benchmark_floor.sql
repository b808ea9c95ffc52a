-- The benchmark floor: ONE DuckDB query from the inbox files straight to the tier table,
-- written from the spec (shared/spec/metrics.md, sources.md), not from the dbt models.
--
-- scripts/benchmark.py fills the placeholders:
--   {customers} {orders} {invoices} {payments} {survey_responses} {fx_rates} {tier_overrides}
--       a relation per feed: the feed's columns (typed Parquet or text CSV) plus _file (the
--       file's position in the byte order of the names = the order files are taken), _line
--       (row number in the file) and _k (the duplicate rule's order as one number: updated_at
--       in epoch microseconds, _file, _line);
--   {through}   the evaluation month asked for, 'YYYY-MM';
--   {grace}     grace_months (1);
--   {rc}        the reporting currency ('CNY');
--   {months}    'all' (every evaluation month) or 'last' (only {through}).
-- and runs it with the session TimeZone set to the business time zone, so that a timestamp
-- without an offset is business time and `cast(... as date)` of an instant is its local date.
--
-- What the floor does not do (the pipeline does): validate rows against the contract, quarantine,
-- trim text, keep history. It trusts the generated files to be clean.
--
-- Months are integers (year * 12 + month - 1). Money is exact: amounts in integer cents times
-- rates in 1e-4 units give integer micro-units of the reporting currency (exact for amounts with
-- <= 2 decimals and rates with <= 4, as the generator writes them), and value_score is an exact
-- integer of cents (HUGEINT fraction). Every rolling 12-month measure is a running sum, over a
-- dense customer x month grid, of "+x when it enters the window, -x when it leaves" events, so
-- the cost is linear in the data. The grace period (month-over-month dependence) is a recursive
-- CTE that advances every customer one month per step.
with recursive

params as (
    select year(strptime('{through}', '%Y-%m')) * 12 + month(strptime('{through}', '%Y-%m')) - 1 as through_m
),

-- sources.md "Duplicates": per key, the row with the latest updated_at (an instant) wins, ties
-- to the file taken later, then the later line; `_k` orders the rows that way (it is unique), so
-- the current version of a key is its row with the largest _k. The feeds with millions of keys
-- take the largest _k per key (a fixed-size aggregate state, which spills) and keep the rows
-- with those _k: arg_max(struct) over 20 million text keys does not spill, and a window carries
-- every column through its sort; both ran out of memory at L
customers as (
    select customer_id, r.scope, year(r.signed_on) * 12 + month(r.signed_on) - 1 as signed_m
    from (
        select customer_id, arg_max({'scope': scope, 'signed_on': cast(signed_on as date)}, _k) as r
        from {customers}
        group by customer_id
    )
),

fx as (
    select currency, year(strptime(month, '%Y-%m')) * 12 + month(strptime(month, '%Y-%m')) - 1 as m,
           arg_max(cast(cast(rate_to_reporting as decimal(18, 4)) * 10000 as bigint), _k) as rate_u
    from {fx_rates}
    group by currency, month
),

orders as (
    -- a blank currency is CNY (sources.md), whatever the reporting currency
    select customer_id, status, coalesce(nullif(currency, ''), 'CNY') as currency,
           cast(order_date as date) as order_date, cast(cast(net_amount as decimal(18, 2)) * 100 as bigint) as net_cents
    from {orders}
    where _k in (select max(_k) from {orders} group by order_id)
),

-- completed orders in micro-units of the reporting currency at the rate of the order's month;
-- an order in another currency without a rate is held back and counts nowhere
orders_done as (
    select o.customer_id, o.m, o.net_cents * case when o.currency = '{rc}' then 10000 else fx.rate_u end as net_u
    from (select *, year(order_date) * 12 + month(order_date) - 1 as m from orders where status = 'completed') as o
    left join fx on fx.currency = o.currency and fx.m = o.m
    where o.currency = '{rc}' or fx.rate_u is not null
),

-- evaluation months are global: from the earliest completed order of any customer
first_month as (select min(m) as first_m from orders_done),

-- customers evaluated: in the master and signed on or before end(M)
evaluated as (
    select c.customer_id, c.scope, greatest(f.first_m, c.signed_m) as start_m
    from customers as c, first_month as f, params as p
    where greatest(f.first_m, c.signed_m) <= p.through_m
),

invoices as (
    select i.invoice_id, i.customer_id, i.currency, i.amount_cents, i.due_m,
           case when i.currency = '{rc}' then 10000 else fx.rate_u end as rate_u
    from (
        select invoice_id, customer_id, coalesce(nullif(currency, ''), 'CNY') as currency,
               cast(cast(amount as decimal(18, 2)) * 100 as bigint) as amount_cents,
               year(cast(invoice_date as date)) * 12 + month(cast(invoice_date as date)) - 1 as inv_m,
               year(cast(due_date as date)) * 12 + month(cast(due_date as date)) - 1 as due_m
        from {invoices}
        where _k in (select max(_k) from {invoices} group by invoice_id)
    ) as i
    left join fx on fx.currency = i.currency and fx.m = i.inv_m
    where i.currency = '{rc}' or fx.rate_u is not null
),

payments as (
    select invoice_id, nullif(currency, '') as currency,
           year(cast(payment_date as date)) * 12 + month(cast(payment_date as date)) - 1 as pay_m,
           cast(cast(amount as decimal(18, 2)) * 100 as bigint) as paid_cents
    from {payments}
    where _k in (select max(_k) from {payments} group by payment_id)
),

-- payments applied to a known invoice in the same currency (a payment without a currency is in
-- its invoice's), summed per invoice and month of payment
paid_by_month as (
    select p.invoice_id, i.customer_id, i.amount_cents, i.rate_u, i.due_m, p.pay_m, p.paid_cents
    from (select invoice_id, currency, pay_m, sum(paid_cents) as paid_cents from payments group by all) as p
    join invoices as i on i.invoice_id = p.invoice_id and coalesce(p.currency, i.currency) = i.currency
),

-- what is collected on an invoice is capped at its amount: the capped running total grows by
-- `step` in the month of payment (converted at the invoice's rate); a payment made before the
-- invoice is due counts from the due month on, and one made after the invoice left the window
-- never counts for it
collected_steps as (
    select customer_id, due_m, greatest(pay_m, due_m) as m,
           (least(cum, amount_cents) - least(cum - paid_cents, amount_cents)) * rate_u as step_u
    from (
        select *, sum(paid_cents) over (partition by invoice_id order by pay_m rows unbounded preceding) as cum
        from paid_by_month
    )
),

surveys as (
    select customer_id, cast(nps_score as integer) as nps, cast(satisfaction as integer) as sat,
           year(cast(cast(submitted_at as timestamptz) as date)) * 12
           + month(cast(cast(submitted_at as timestamptz) as date)) - 1 as m
    from {survey_responses}
    where _k in (select max(_k) from {survey_responses} group by response_id)
),

-- per customer and month: sales, invoices falling due, collections, survey answers
order_months as (
    select customer_id, m, sum(net_u) as net_u from orders_done group by all
),

due_months as (
    select customer_id, due_m as m, sum(amount_cents * rate_u) as billed_u from invoices group by all
),

-- a collection step counts from its month (not before the due month) until the invoice leaves
-- the window; one made after that never counts
collected_months as (
    select customer_id, e.m, sum(e.step_u) as step_u
    from collected_steps,
         unnest([{'m': m, 'step_u': step_u}, {'m': due_m + 12, 'step_u': -step_u}]) as t(e)
    where m <= due_m + 11
    group by all
),

survey_months as (
    select customer_id, m, count(*) as resp, count(nps) as scored, count(*) filter (where nps >= 9) as prom,
           count(*) filter (where nps <= 6) as det, coalesce(sum(sat), 0) as sat_sum, count(sat) as sat_n
    from surveys group by all
),

-- window events: a value enters W(M) in its month and leaves 12 months later; P(M) is W(M)
-- shifted by 12 months; an invoice counts in the months its due date is in the window
events as (
    select customer_id, m, net_u as rev, 0 as prev, 1 as act, 0 as billed, 0 as coll,
           0 as scored, 0 as prom, 0 as det, 0 as sat_sum, 0 as sat_n
    from order_months
    union all select customer_id, m + 12, -net_u, net_u, -1, 0, 0, 0, 0, 0, 0, 0 from order_months
    union all select customer_id, m + 24, 0, -net_u, 0, 0, 0, 0, 0, 0, 0, 0 from order_months
    union all select customer_id, m, 0, 0, 0, billed_u, 0, 0, 0, 0, 0, 0 from due_months
    union all select customer_id, m + 12, 0, 0, 0, -billed_u, 0, 0, 0, 0, 0, 0 from due_months
    union all select customer_id, m, 0, 0, 0, 0, step_u, 0, 0, 0, 0, 0 from collected_months
    union all select customer_id, m, 0, 0, 0, 0, 0, scored, prom, det, sat_sum, sat_n from survey_months
    union all
    select customer_id, m + 12, 0, 0, 0, 0, 0, -scored, -prom, -det, -sat_sum, -sat_n from survey_months
),

-- events before a customer's first evaluated month accumulate into it
events_by_month as (
    select e.customer_id, greatest(e.m, v.start_m) as m,
           sum(rev)::bigint as rev, sum(prev)::bigint as prev, sum(act)::bigint as act,
           sum(billed)::bigint as billed, sum(coll)::bigint as coll, sum(scored)::bigint as scored, sum(prom)::bigint as prom, sum(det)::bigint as det,
           sum(sat_sum)::bigint as sat_sum, sum(sat_n)::bigint as sat_n
    from events as e
    join evaluated as v using (customer_id)
    cross join params as p
    where e.m <= p.through_m
    group by all
),

grid as (
    select customer_id, scope, start_m, unnest(range(start_m, through_m + 1)) as m
    from evaluated, params
),

measures as (
    select g.customer_id, g.scope, g.start_m, g.m,
           cast(sum(coalesce(e.rev, 0)) over w as bigint) as revenue_12m,
           cast(sum(coalesce(e.prev, 0)) over w as bigint) as revenue_prev_12m,
           cast(sum(coalesce(e.act, 0)) over w as integer) as active_months_12m,
           cast(sum(coalesce(e.billed, 0)) over w as bigint) as billed_due_12m,
           cast(sum(coalesce(e.coll, 0)) over w as bigint) as collected_12m,
           cast(sum(coalesce(e.scored, 0)) over w as integer) as scored_12m,
           cast(sum(coalesce(e.prom, 0)) over w as integer) as promoters_12m,
           cast(sum(coalesce(e.det, 0)) over w as integer) as detractors_12m,
           cast(sum(coalesce(e.sat_sum, 0)) over w as integer) as sat_sum_12m,
           cast(sum(coalesce(e.sat_n, 0)) over w as integer) as sat_n_12m
    from grid as g
    left join events_by_month as e using (customer_id, m)
    window w as (partition by g.customer_id order by g.m rows between unbounded preceding and current row)
),

-- V = a * (0.7 b + 0.3 d) * e with b = revenue_12m and d = b * clamp(rev / prev, 0.5, 1.5)
-- (d = b without previous revenue), as an exact fraction: d = b * p / q, and
-- value_cents = a10 * e100 * b_micro * (7 q + 3 p) / (10^8 q), rounded half away from zero.
-- From here on only what the tier table needs is carried (narrow rows keep the memory down).
valued as (
    select customer_id, start_m, m, active_months_12m, billed_due_12m, collected_12m, scored_12m,
           promoters_12m, detractors_12m, sat_sum_12m, sat_n_12m,
           cast((2 * a10 * e100 * cast(revenue_12m as hugeint) * (7 * q + 3 * p) + q * 100000000)
                // (2 * q * 100000000) as bigint) as value_cents
    from (
        select *,
               case scope when 'global' then 12 when 'national' then 11 else 10 end as a10,
               case when billed_due_12m = 0 then 100
                    when collected_12m * 100 >= billed_due_12m * 95 then 100
                    when collected_12m * 100 >= billed_due_12m * 85 then 95
                    when collected_12m * 100 >= billed_due_12m * 70 then 85
                    else 70 end as e100,
               cast(case when revenue_prev_12m = 0 then 1 when 2 * revenue_12m <= revenue_prev_12m then 1
                         when 2 * revenue_12m >= 3 * revenue_prev_12m then 3 else revenue_12m end as hugeint) as p,
               cast(case when revenue_prev_12m = 0 then 1 when 2 * revenue_12m <= revenue_prev_12m then 2
                         when 2 * revenue_12m >= 3 * revenue_prev_12m then 2 else revenue_prev_12m end as hugeint) as q
        from measures
    )
),

-- raw tier: rank by value_score desc, ties by customer_id (byte order); share_before is the
-- running sum over the strictly better ranked, over the month's total
ranked as (
    select *,
           case when value_cents > 0 then row_number() over r end as value_rank,
           case when value_cents > 0
                then cast(coalesce(sum(value_cents) over (r rows between unbounded preceding and 1 preceding), 0)
                          as bigint) end as value_before,
           case when value_cents > 0 then cast(sum(value_cents) over (partition by m, value_cents > 0) as bigint) end
               as value_total
    from valued
    window r as (partition by m, value_cents > 0 order by value_cents desc, customer_id asc)
),

raw_tiers as materialized (
    select *,
           case when value_cents <= 0 then 'C'
                when value_before * 100 < value_total * 80 then 'A'
                when value_before * 100 < value_total * 95 then 'B'
                else 'C' end as raw_tier
    from ranked
),

overrides as (
    select customer_id, year(strptime(eval_month, '%Y-%m')) * 12 + month(strptime(eval_month, '%Y-%m')) - 1 as m,
           arg_max(tier, _k) as tier
    from {tier_overrides}
    where nullif(approved_by, '') is not null and nullif(reason, '') is not null and tier in ('A', 'B', 'C')
    group by customer_id, eval_month
),

-- each customer's raw tiers and overrides, month by month, packed two bits a month into two
-- numbers (A 1, B 2, C 3; no override 0): plain sums, which spill, where ordered list()
-- aggregates ran out of memory at L. A 128-bit hugeint holds 63 months; the benchmark has 36.
sequences as materialized (
    select r.customer_id, count(*) as n,
           sum(cast(case r.raw_tier when 'A' then 1 when 'B' then 2 else 3 end as hugeint)
               << (2 * (r.m - r.start_m))) as raws,
           sum(cast(case o.tier when 'A' then 1 when 'B' then 2 when 'C' then 3 else 0 end as hugeint)
               << (2 * (r.m - r.start_m))) as ovrs
    from raw_tiers as r
    left join overrides as o using (customer_id, m)
    group by r.customer_id
),

-- each customer's first evaluated month (bits 0 and 1) as letters
firsts as (
    select customer_id,
           case raws & 3 when 1 then 'A' when 2 then 'B' else 'C' end as raw,
           case ovrs & 3 when 1 then 'A' when 2 then 'B' when 3 then 'C' end as ovr
    from sequences
),

-- the assigned tier, one month per step ('A' < 'B' < 'C', so "better" is "smaller"): `below` is
-- the length of the current run of months below the tier, `best` the best raw tier seen in it
assigned as (
    select customer_id, 1 as k, coalesce(ovr, raw) as tier, null::varchar as previous_tier,
           case when ovr is not null then 'override' else 'new' end as tier_change,
           0 as below, null::varchar as best
    from firsts
    union all
    select a.customer_id, a.k + 1,
           case when a.ovr is not null then a.ovr
                when a.raw < a.tier then a.raw
                when a.raw = a.tier then a.tier
                when a.below + 1 > {grace} then least(coalesce(a.best, a.raw), a.raw)
                else a.tier end,
           a.tier,
           case when a.ovr is not null then 'override'
                when a.raw < a.tier then 'promoted'
                when a.raw = a.tier then 'unchanged'
                when a.below + 1 > {grace} then 'demoted'
                else 'held' end,
           case when a.ovr is not null or a.raw <= a.tier or a.below + 1 > {grace} then 0
                else a.below + 1 end,
           case when a.ovr is not null or a.raw <= a.tier or a.below + 1 > {grace} then null
                else least(coalesce(a.best, a.raw), a.raw) end
    from (  -- month k (bits 2k and 2k + 1) of the sequences, the month after a.k - 1
        select a.*,
               case (s.raws >> (2 * a.k)) & 3 when 1 then 'A' when 2 then 'B' else 'C' end as raw,
               case (s.ovrs >> (2 * a.k)) & 3 when 1 then 'A' when 2 then 'B' when 3 then 'C' end as ovr
        from assigned as a
        join sequences as s on s.customer_id = a.customer_id and a.k < s.n
    ) as a
),

first_order as (select customer_id, min(m) as first_order_m from orders_done group by customer_id)

select
    r.customer_id,
    printf('%04d-%02d', r.m // 12, r.m % 12 + 1) as eval_month,
    cast(r.value_cents as decimal(38, 0)) * 0.01 as value_score,
    r.value_rank,
    round(r.value_before / r.value_total, 4) as share_before,
    r.raw_tier,
    a.tier,
    a.previous_tier,
    a.tier_change,
    case when r.billed_due_12m > 0 then round(r.collected_12m / r.billed_due_12m + 1e-12, 4) end
        as collection_rate_12m,
    case when r.scored_12m > 0
         then round(100.0 * (r.promoters_12m - r.detractors_12m) / r.scored_12m
                    + sign(r.promoters_12m - r.detractors_12m) * 1e-9, 1) end as nps_12m,
    round(100 * (0.4 * r.active_months_12m / 12
                 + 0.2 * least(case when f.first_order_m <= r.m then r.m - f.first_order_m + 1 else 0 end, 36) / 36
                 + 0.4 * case when r.scored_12m > 0
                              then (100.0 * (r.promoters_12m - r.detractors_12m) / r.scored_12m + 100) / 200
                              when r.sat_n_12m > 0 then (r.sat_sum_12m / r.sat_n_12m - 1) / 4
                              else 0.5 end) + 1e-9, 1) as loyalty_score
from raw_tiers as r
join assigned as a on a.customer_id = r.customer_id and a.k = r.m - r.start_m + 1
left join first_order as f on f.customer_id = r.customer_id
cross join params as p
where '{months}' = 'all' or r.m = p.through_m
order by r.m, r.customer_id
