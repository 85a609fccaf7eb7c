-- The airlock demo shop. customers holds PII (email, ssn, phone).
CREATE TABLE customers (
    id         serial PRIMARY KEY,
    name       text NOT NULL,
    city       text NOT NULL,
    email      text NOT NULL,
    ssn        text NOT NULL,
    phone      text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers(id),
    product_id  int NOT NULL REFERENCES products(id),
    quantity    int NOT NULL,
    total       numeric(12,2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE VIEW customer_contacts AS SELECT name, email, phone FROM customers;
CREATE VIEW order_totals AS
    SELECT customer_id, count(*) AS orders, sum(total) AS spent FROM orders GROUP BY customer_id;

INSERT INTO customers (name, city, email, ssn, phone)
SELECT 'Customer ' || i,
       (ARRAY['Lisbon','Oslo','Austin','Osaka','Lagos'])[1 + i % 5],
       'customer' || i || '@example.com',
       lpad((100000000 + i * 7919)::text, 9, '0'),
       '+1-555-' || lpad(i::text, 4, '0')
FROM generate_series(1, 50) AS i;
INSERT INTO products (name, price)
SELECT 'Product ' || i, (i * 3.5)::numeric(10,2) FROM generate_series(1, 20) AS i;
INSERT INTO orders (customer_id, product_id, quantity, total)
SELECT 1 + i % 50, 1 + i % 20, 1 + i % 4, ((1 + i % 4) * (1 + i % 20) * 3.5)::numeric(12,2)
FROM generate_series(1, 200) AS i;
