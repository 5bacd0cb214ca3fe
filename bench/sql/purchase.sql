-- The purchase benchmark's baseline: what POST /events/purchase writes for a customer with a 3-level chain,
-- done by ONE stored-procedure call (pgbench runs `SELECT bench_purchase(customer, amount, rollups)`):
--   the host event row (idempotency) and its stored answer, the customer lock and first-purchase mark, the
--   purchase, three commissions, one ledger transaction with four entries, and the three partners'
--   earnings_pending balance rows (updated in ascending account id order, as the ledger does). The platform's
--   commission_expense account is kept as a sum (no balance row update), as in the application.
-- With p_rollups (the baseline since round 5), also the dashboard's rollups the application keeps in the same
-- transaction: the partner's last-seen buyer and the buyers' histogram on its day rows, its day's revenue, and
-- each earner's day commissions (partner id order). Without it, the baseline of rounds 1 to 4.

CREATE SEQUENCE IF NOT EXISTS bench_purchase_seq;

CREATE OR REPLACE FUNCTION bench_account(p_owner text, p_kind text, p_currency text, p_as_sum boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM ledger_accounts WHERE owner = p_owner AND kind = p_kind AND currency = p_currency;
    IF v_id IS NULL THEN
        INSERT INTO ledger_accounts (owner, kind, currency, may_go_negative, kept_as_sum, posted, pending_debits,
                                     pending_credits, created_at)
        VALUES (p_owner, p_kind, p_currency, p_as_sum, p_as_sum, 0, 0, 0, now())
        ON CONFLICT DO NOTHING;
        SELECT id INTO v_id FROM ledger_accounts WHERE owner = p_owner AND kind = p_kind AND currency = p_currency;
    END IF;
    RETURN v_id;
END;
$$;

CREATE OR REPLACE FUNCTION bench_add_buyers(p_partner bigint, p_day date, p_buyers integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_partner_days (partner_id, day, clicks, bot_clicks, signups, visitors, buyers)
    VALUES (p_partner, p_day, 0, 0, 0, 0, p_buyers)
    ON CONFLICT (partner_id, day) DO UPDATE SET buyers = rollup_partner_days.buyers + EXCLUDED.buyers;
$$;

CREATE OR REPLACE FUNCTION bench_count_rollups(
    p_partner bigint, p_customer bigint, p_day date, p_amount bigint, p_chain bigint[], p_shares bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_buyer bigint;
    v_last date;
BEGIN
    INSERT INTO rollup_partner_buyers (partner_id, customer_id, last_day) VALUES (p_partner, p_customer, p_day)
    ON CONFLICT DO NOTHING RETURNING id INTO v_buyer;
    IF v_buyer IS NOT NULL THEN
        PERFORM bench_add_buyers(p_partner, p_day, 1);
    ELSE
        SELECT last_day INTO v_last FROM rollup_partner_buyers
        WHERE partner_id = p_partner AND customer_id = p_customer FOR UPDATE;
        IF p_day > v_last THEN
            UPDATE rollup_partner_buyers SET last_day = p_day WHERE partner_id = p_partner AND customer_id = p_customer;
            PERFORM bench_add_buyers(p_partner, v_last, -1);
            PERFORM bench_add_buyers(p_partner, p_day, 1);
        END IF;
    END IF;

    INSERT INTO rollup_partner_revenue (partner_id, day, currency, purchases, gross, refunded)
    VALUES (p_partner, p_day, 'USD', 1, p_amount, 0)
    ON CONFLICT (partner_id, day, currency) DO UPDATE
    SET purchases = rollup_partner_revenue.purchases + 1, gross = rollup_partner_revenue.gross + EXCLUDED.gross;

    INSERT INTO rollup_partner_commissions (partner_id, day, currency, status, level, count, amount, reversed)
    SELECT earner, p_day, 'USD', 'pending', level, 1, share, 0
    FROM unnest(p_chain, p_shares) WITH ORDINALITY AS t(earner, share, level)
    ORDER BY earner
    ON CONFLICT (partner_id, day, currency, status, level) DO UPDATE
    SET count = rollup_partner_commissions.count + 1,
        amount = rollup_partner_commissions.amount + EXCLUDED.amount;
END;
$$;

CREATE OR REPLACE FUNCTION bench_purchase(p_customer integer, p_amount bigint, p_rollups boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_external text := 'pgb-' || nextval('bench_purchase_seq');
    v_now timestamptz := now();
    v_event bigint;
    v_customer_id bigint;
    v_partner_id bigint;
    v_purchase bigint;
    v_tx bigint;
    v_chain bigint[];
    v_rates integer[] := ARRAY[500, 200, 100];
    v_accounts bigint[] := ARRAY[]::bigint[];
    v_shares bigint[] := ARRAY[]::bigint[];
    v_share bigint;
    v_total bigint := 0;
    v_expense bigint;
    v_posted bigint;
    v_row record;
BEGIN
    INSERT INTO host_events (kind, external_id, payload_hash, status_code, response, created_at)
    VALUES ('purchase', v_external, md5(v_external), 0, '{}', v_now)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_event;

    SELECT id, partner_id INTO v_customer_id, v_partner_id
    FROM customers WHERE external_id = 'c-' || p_customer FOR UPDATE;
    UPDATE customers SET first_purchase_at = v_now WHERE id = v_customer_id AND first_purchase_at IS NULL;

    INSERT INTO purchases (external_id, customer_id, partner_id, amount, currency, product, occurred_at,
                           refunded_amount, status, created_at)
    VALUES (v_external, v_customer_id, v_partner_id, p_amount, 'USD', 'sms', v_now, 0, 'completed', v_now)
    RETURNING id INTO v_purchase;

    SELECT ARRAY[child.id, parent.id, grandparent.id] INTO v_chain
    FROM partners child
    JOIN partners parent ON parent.id = child.parent_id
    JOIN partners grandparent ON grandparent.id = parent.parent_id
    WHERE child.id = v_partner_id;

    INSERT INTO ledger_transactions (idempotency_key, payload_hash, kind, description, details, created_at)
    VALUES ('purchase:' || v_purchase || ':commissions', md5(v_external), 'commission',
            'commissions on purchase ' || v_external, json_build_object('purchase_id', v_purchase), v_now)
    RETURNING id INTO v_tx;

    v_expense := bench_account('platform', 'commission_expense', 'USD', true);
    FOR level IN 1..3 LOOP
        v_share := (p_amount * v_rates[level]) / 10000;
        v_total := v_total + v_share;
        INSERT INTO commissions (purchase_id, partner_id, level, currency, base_amount, rate_bps, amount,
                                 reversed_amount, status, payable_at, status_reason, ledger_transaction_id,
                                 created_at)
        VALUES (v_purchase, v_chain[level], level, 'USD', p_amount, v_rates[level], v_share, 0, 'pending',
                v_now + interval '30 days', '', v_tx, v_now);
        v_accounts := v_accounts || bench_account('partner:' || v_chain[level], 'earnings_pending', 'USD', false);
        v_shares := v_shares || v_share;
    END LOOP;

    INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
    SELECT v_tx, account, 'USD', share FROM unnest(v_accounts, v_shares) AS t(account, share)
    UNION ALL SELECT v_tx, v_expense, 'USD', -v_total;

    FOR v_row IN SELECT account, share FROM unnest(v_accounts, v_shares) AS t(account, share) ORDER BY account LOOP
        UPDATE ledger_accounts SET posted = posted + v_row.share WHERE id = v_row.account
        RETURNING posted INTO v_posted;
    END LOOP;

    UPDATE host_events
    SET status_code = 201,
        response = json_build_object('purchase_id', v_purchase, 'external_id', v_external,
                                     'customer_id', v_customer_id, 'amount', p_amount, 'currency', 'USD',
                                     'commissions', to_json(v_shares))
    WHERE id = v_event;

    IF p_rollups THEN
        PERFORM bench_count_rollups(v_partner_id, v_customer_id, (v_now AT TIME ZONE 'UTC')::date, p_amount,
                                    v_chain, v_shares);
    END IF;
    RETURN v_purchase;
END;
$$;
