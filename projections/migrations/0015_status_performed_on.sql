-- When the person was seen (issue 18): RetireeStatus.performed_on, the Asia/Shanghai day
-- the completing certification was performed. completed_at stays when lifecert recorded
-- the completing event (a receipt: a posted form, a weekly batch). Null for statuses
-- projected before it was kept and for those written before the field existed: readers
-- then fall back on completed_at's day (GetStatus's completed_on does).
ALTER TABLE retiree_status ADD COLUMN performed_on date;
