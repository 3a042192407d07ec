"""``tokenhub rate``: load the books, rate landed usage (re-rating on book changes), build marts."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rate",
        help="rate landed usage with the price books and rebuild the marts",
        description="Load the books (warehouse/pricing/books/ or TOKENHUB_BOOKS_DIR), rate "
        "new events with the price in force at their time, re-rate past events when a book "
        "changed (recording adjustments), then rebuild the staging views and marts.",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="rate only; do not rebuild the marts"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from streams.settings import get_settings
    from tokenhub.cli import UserError
    from warehouse import db
    from warehouse.pricing.cost_books import CostBookError, load_cost_books
    from warehouse.pricing.rating import RatingError, rate

    settings = get_settings()
    con = db.connect(settings.warehouse_path)
    try:
        try:
            result = rate(con, settings)
            if not args.no_build:
                # The economics marts read the cost books: load them beside the price books.
                load_cost_books(con, settings.books)
                built = db.build(con)
        except CostBookError as error:  # price and cost books alike
            raise UserError(
                f"broken book: {error}; fix the file and run `tokenhub rate` again"
            ) from None
        except RatingError as error:
            raise UserError(str(error)) from None
    finally:
        con.close()
    print(f"rated:   {result.rated} event(s) ({result.new_events} new this run)")
    print(f"unrated: {result.unrated} event(s)")
    for reason, count in result.unrated_by_reason.items():
        print(f"  {reason}: {count}")
    changed = f" (books changed: {', '.join(result.changed_books)})" if result.changed_books else ""
    print(f"re-rated: {result.adjusted} event(s) with an adjustment{changed}")
    if not args.no_build:
        print(f"built:   {len(built)} model(s) in {settings.warehouse_path}")
    if result.unrated:
        print("some usage is unrated: see marts.rpt_unrated_summary, add the prices, rate again")
    return 0
