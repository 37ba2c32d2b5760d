-- Rules 11-14 (DESIGN.md, "Corrections and fairness"): each status carries how many of the
-- retiree's certifications were revoked and death reports retracted (RetireeStatus fields,
-- 0 in records written before them), and a corrections view per retiree.
ALTER TABLE retiree_status
    ADD COLUMN revocations integer NOT NULL DEFAULT 0 CHECK (revocations >= 0),
    ADD COLUMN retractions integer NOT NULL DEFAULT 0 CHECK (retractions >= 0);

-- Per retiree and cycle with any correction: revocations and retractions (from the status),
-- and the correcting payment instructions of the ledger with their sums in fen:
-- reinstatements (rule 13, back-pay), estate settlements (rule 14) and overpayments
-- cancelled (rule 13). The ledger is not per cycle: its figures are the retiree's.
CREATE VIEW retiree_corrections AS
WITH instructions AS (
    SELECT retiree_id,
           count(*) FILTER (WHERE type = 'PaymentReinstated')                 AS reinstatements,
           coalesce(sum(amount_fen) FILTER (WHERE type = 'PaymentReinstated'), 0)
                                                                               AS reinstated_fen,
           count(*) FILTER (WHERE type = 'PaymentEstateSettled')              AS estate_settlements,
           coalesce(sum(amount_fen) FILTER (WHERE type = 'PaymentEstateSettled'), 0)
                                                                               AS estate_fen,
           count(*) FILTER (WHERE type = 'OverpaymentCancelled')              AS overpayments_cancelled,
           coalesce(sum(amount_fen) FILTER (WHERE type = 'OverpaymentCancelled'), 0)
                                                                               AS cancelled_fen
    FROM instruction_ledger
    WHERE type IN ('PaymentReinstated', 'PaymentEstateSettled', 'OverpaymentCancelled')
    GROUP BY retiree_id
)
SELECT coalesce(s.retiree_id, i.retiree_id)          AS retiree_id,
       s.policy,
       coalesce(s.revocations, 0)                    AS revocations,
       coalesce(s.retractions, 0)                    AS retractions,
       coalesce(i.reinstatements, 0)::bigint         AS reinstatements,
       coalesce(i.reinstated_fen, 0)::bigint         AS reinstated_fen,
       coalesce(i.estate_settlements, 0)::bigint     AS estate_settlements,
       coalesce(i.estate_fen, 0)::bigint             AS estate_fen,
       coalesce(i.overpayments_cancelled, 0)::bigint AS overpayments_cancelled,
       coalesce(i.cancelled_fen, 0)::bigint          AS cancelled_fen
FROM (SELECT * FROM retiree_status WHERE revocations > 0 OR retractions > 0) s
FULL JOIN instructions i ON i.retiree_id = s.retiree_id;
