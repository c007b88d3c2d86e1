"""SQLAlchemy (ORM, Core, reflection), Alembic and pandas on dolite through the
``sqlite+dolite`` dialect, locally and over HTTP through a real ``dolite serve``."""

from __future__ import annotations

import datetime
import decimal
import importlib.metadata
import itertools
import subprocess
import sys
import textwrap
import warnings

import pytest

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship  # noqa: E402

import dolite  # noqa: E402
import dolite.sqlalchemy  # noqa: E402,F401  (registers sqlite+dolite+http)
from tests.server.conftest import Server  # noqa: E402

_names = itertools.count()
MOMENT = datetime.datetime(2024, 2, 29, 12, 30, 1, 250000)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    joined: Mapped[datetime.datetime]
    birthday = mapped_column(sa.Date)
    balance = mapped_column(sa.Numeric(12, 2))
    settings = mapped_column(sa.JSON)
    photo = mapped_column(sa.LargeBinary)
    orders: Mapped[list[Order]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customers.id"))
    item: Mapped[str]
    customer: Mapped[Customer] = relationship(back_populates="orders")


def a_customer(name: str = "ada", **extra) -> Customer:
    return Customer(name=name, joined=MOMENT, birthday=datetime.date(1815, 12, 10),
                    balance=decimal.Decimal("1234.56"), settings={"tags": ["a", "b"], "n": 1},
                    photo=b"\x00\xffpng", **extra)


@pytest.fixture
def engine():
    n = next(_names)
    eng = sa.create_engine(f"sqlite+dolite:///shop{n}?storage=memory:sa{n}")
    yield eng
    eng.dispose()


def test_url_options_reach_dolite_connect_and_unknown_ones_are_refused():
    dialect = sa.create_engine("sqlite+dolite:///shop?storage=memory:opts&timeout=2&exclusive=true").dialect
    args, kwargs = dialect.create_connect_args(sa.engine.make_url("sqlite+dolite:///shop?storage=memory:o&timeout=2"))
    assert args == ["shop"] and kwargs == {"storage": "memory:o", "timeout": 2.0, "check_same_thread": False}
    with pytest.raises(sa.exc.ArgumentError, match="unknown URL option"):
        dialect.create_connect_args(sa.engine.make_url("sqlite+dolite:///shop?storge=memory:o"))
    http = sa.engine.make_url("sqlite+dolite://127.0.0.1:9/shop?token=T")
    assert dialect.create_connect_args(http) == (["http://127.0.0.1:9/shop"], {"token": "T"})


def test_entry_points_and_real_sqlite_version(engine):
    names = {ep.name for ep in importlib.metadata.entry_points(group="sqlalchemy.dialects")}
    assert {"sqlite.dolite", "sqlite.dolite.http", "sqlite.dolite.https"} <= names
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sqlite_version()").scalar() == dolite.sqlite_version
    assert engine.dialect.server_version_info == dolite.sqlite_version_info
    assert engine.dialect.driver == "dolite"


def test_create_engine_with_no_other_code(tmp_path):
    """What README shows: no import of dolite, only the URL (the entry point does the rest)."""
    script = textwrap.dedent(f"""
        from sqlalchemy import create_engine, text
        engine = create_engine("sqlite+dolite:///shop?storage=lmdb:{tmp_path}/data")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t(v)"))
            conn.execute(text("INSERT INTO t VALUES (:v)"), {{"v": 41}})
        with engine.connect() as conn:
            print(conn.execute(text("SELECT v + 1 FROM t")).scalar(), type(engine.dialect).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "DoliteDialect"]


def test_orm_relationships_types_savepoint_returning(engine):
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        ada = a_customer()
        ada.orders = [Order(item="engine"), Order(item="notes")]
        session.add(ada)
        session.commit()
        with session.begin_nested():  # SAVEPOINT ... RELEASE
            session.add(a_customer("kept"))
        try:
            with session.begin_nested():  # SAVEPOINT ... ROLLBACK TO
                session.add(a_customer("dropped"))
                session.flush()
                raise RuntimeError
        except RuntimeError:
            pass
        session.commit()
    with Session(engine) as session:
        names = session.scalars(sa.select(Customer.name).order_by(Customer.id)).all()
        assert names == ["ada", "kept"]
        ada = session.scalars(sa.select(Customer).where(Customer.name == "ada")).one()
        assert (ada.joined, ada.birthday, ada.balance, ada.settings, ada.photo) == (
            MOMENT, datetime.date(1815, 12, 10), decimal.Decimal("1234.56"), {"tags": ["a", "b"], "n": 1}, b"\x00\xffpng")
        assert sorted(o.item for o in ada.orders) == ["engine", "notes"]
        assert session.scalars(sa.select(Order).where(Order.item == "notes")).one().customer.name == "ada"
        session.delete(ada)
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0
    with engine.begin() as conn:
        new_id = conn.execute(sa.insert(Customer).values(name="r", joined=MOMENT).returning(Customer.id)).scalar()
        assert conn.execute(sa.update(Customer).where(Customer.id == new_id).values(name="s")
                            .returning(Customer.name)).scalar() == "s"


def test_core_and_reflection(engine):
    meta = sa.MetaData()
    items = sa.Table("items", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(20), nullable=False, index=True),
                     sa.Column("price", sa.Numeric(8, 2)), sa.Column("seen", sa.DateTime),
                     sa.Column("doc", sa.JSON), sa.Column("raw", sa.LargeBinary))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), [{"name": f"n{i}", "price": decimal.Decimal(f"{i}.25"), "seen": MOMENT,
                                       "doc": {"i": i}, "raw": bytes([i])} for i in range(5)])
        assert conn.execute(sa.select(sa.func.sum(items.c.price))).scalar() == decimal.Decimal("11.25")
        assert conn.execute(sa.select(items.c.doc["i"].as_integer()).where(items.c.name == "n3")).scalar() == 3
        assert conn.execute(sa.select(items.c.seen, items.c.raw).where(items.c.id == 2)).one() == (MOMENT, b"\x01")
        assert conn.execute(sa.select(items.c.name).where(items.c.name.regexp_match("^n[34]$"))).scalars().all() \
            == ["n3", "n4"]
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == ["items"]
    assert [c["name"] for c in inspector.get_columns("items")] == ["id", "name", "price", "seen", "doc", "raw"]
    assert inspector.get_indexes("items")[0]["column_names"] == ["name"]
    reflected = sa.Table("items", sa.MetaData(), autoload_with=engine)
    assert isinstance(reflected.c.price.type, sa.Numeric)


def test_alembic_migrations(tmp_path):
    alembic_command = pytest.importorskip("alembic.command")
    from alembic.config import Config

    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(textwrap.dedent("""
        from alembic import context
        from sqlalchemy import create_engine
        engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
        with engine.connect() as connection:
            context.configure(connection=connection, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
    """))
    (scripts / "versions" / "0001_accounts.py").write_text(textwrap.dedent("""
        import sqlalchemy as sa
        from alembic import op
        revision, down_revision, branch_labels, depends_on = "0001", None, None, None
        def upgrade():
            op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("name", sa.String(40)))
            op.execute("INSERT INTO accounts(name) VALUES ('first')")
        def downgrade():
            op.drop_table("accounts")
    """))
    (scripts / "versions" / "0002_balance.py").write_text(textwrap.dedent("""
        import sqlalchemy as sa
        from alembic import op
        revision, down_revision, branch_labels, depends_on = "0002", "0001", None, None
        def upgrade():
            with op.batch_alter_table("accounts") as batch:   # SQLite's copy-and-move ALTER
                batch.add_column(sa.Column("balance", sa.Numeric(10, 2), server_default="0"))
                batch.alter_column("name", existing_type=sa.String(40), nullable=False)
        def downgrade():
            with op.batch_alter_table("accounts") as batch:
                batch.drop_column("balance")
    """))
    url = f"sqlite+dolite:///migrated?storage=lmdb:{tmp_path}/data"
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url)
    alembic_command.upgrade(config, "head")
    engine = sa.create_engine(url)
    try:
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("accounts")}
        assert set(columns) == {"id", "name", "balance"} and columns["name"]["nullable"] is False
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
            assert conn.exec_driver_sql("SELECT name, balance FROM accounts").one() == ("first", 0)
        alembic_command.downgrade(config, "base")
        assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()


def _frame():
    pd = pytest.importorskip("pandas")
    return pd, pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "price": [1.5, 2.25],
                             "at": [MOMENT, MOMENT + datetime.timedelta(days=1)]})


def test_pandas_through_the_engine(engine):
    pd, frame = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "only SQLAlchemy connectables" warning
        assert frame.to_sql("prices", engine, index=False) == 2
        back = pd.read_sql("SELECT * FROM prices ORDER BY id", engine, parse_dates=["at"])
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    back = pd.read_sql_table("prices", engine)
    assert list(back["at"]) == list(frame["at"])


def test_pandas_on_a_plain_connection_binds_datetimes():
    """pandas on a DB-API connection that is not sqlite3 warns (pandas' own rule), but
    datetimes bind through sqlite3's default adapters as they do on sqlite3."""
    pd, frame = _frame()
    conn = dolite.connect("pandas-plain", storage="memory:pandas-plain")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frame.to_sql("prices", conn, index=False)
        back = pd.read_sql("SELECT * FROM prices ORDER BY id", conn, parse_dates=["at"])
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    conn.close()


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("sa-http")
    srv = Server(f"lmdb:{path}/data", log=path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def http_engine(server, request):
    host = server.url.removeprefix("http://")
    eng = sa.create_engine(f"sqlite+dolite+http://{host}/{request.node.name[:50]}?token={server.token}")
    yield eng
    eng.dispose()


def test_http_core_orm_reflection_and_version(http_engine):
    Base.metadata.create_all(http_engine)
    with Session(http_engine) as session:
        ada = a_customer()
        ada.orders = [Order(item="engine")]
        session.add(ada)
        session.commit()
    with Session(http_engine) as session:
        ada = session.scalars(sa.select(Customer)).one()
        assert (ada.joined, ada.balance, ada.settings, ada.photo, [o.item for o in ada.orders]) == (
            MOMENT, decimal.Decimal("1234.56"), {"tags": ["a", "b"], "n": 1}, b"\x00\xffpng", ["engine"])
    with http_engine.begin() as conn:
        assert conn.execute(sa.insert(Order).values(customer_id=1, item="x").returning(Order.id)).scalar() == 2
    assert set(sa.inspect(http_engine).get_table_names()) == {"customers", "orders"}
    assert http_engine.dialect.server_version_info >= (3, 54)


def test_http_pandas(http_engine):
    pd, frame = _frame()
    frame.to_sql("prices", http_engine, index=False)
    back = pd.read_sql("SELECT * FROM prices ORDER BY id", http_engine, parse_dates=["at"])
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_sqlite_dolite_url_with_a_host_connects_over_http(server):
    """``sqlite+dolite://HOST:PORT/NAME`` (no ``+http``) reaches the service; the REGEXP
    function the local dialect installs is not offered on an HTTP connection."""
    host = server.url.removeprefix("http://")
    engine = sa.create_engine(f"sqlite+dolite://{host}/plain-dolite-url?token={server.token}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t(v)"))
            conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": 41})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT v + 1 FROM t")).scalar() == 42
            assert type(conn.connection.dbapi_connection).__module__ == "dolite.remote.httpdbapi"
            server_version = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
        assert engine.dialect.server_version_info == tuple(map(int, server_version.split(".")))
    finally:
        engine.dispose()
