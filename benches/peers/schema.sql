CREATE TABLE slots (id int PRIMARY KEY, capacity int NOT NULL, booked int NOT NULL DEFAULT 0);
INSERT INTO slots SELECT g, 1000000, 0 FROM generate_series(1, 100000) g;
CREATE TABLE orders (
  id bigserial PRIMARY KEY, user_id bigint NOT NULL, slot_id int NOT NULL REFERENCES slots(id),
  address text NOT NULL, size text NOT NULL, price_cents int NOT NULL, status text NOT NULL DEFAULT 'placed');
CREATE UNIQUE INDEX one_active_order ON orders (user_id) WHERE status = 'placed';
