-- The same create-order transaction as pizza-orders: one active order per user (partial
-- unique index) and a slot capacity check, in one transaction, durable commit.
\set user random(1, 1000000000)
\set slot random(1, 100000)
BEGIN;
UPDATE slots SET booked = booked + 1 WHERE id = :slot AND booked < capacity;
INSERT INTO orders (user_id, slot_id, address, size, price_cents) VALUES (:user, :slot, '1 Bench St', 'large', 1300)
  ON CONFLICT (user_id) WHERE status = 'placed' DO NOTHING;
COMMIT;
