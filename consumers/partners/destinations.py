"""The agreed partner destination names: one per recipient that data may be shared with.

The stream's routing and this sink's configuration spell partners exactly like this
(the lowercase :class:`~schemas.taxonomy.Recipient` value).
"""

from __future__ import annotations

from typing import Final

from schemas.taxonomy import Recipient

PARTNER_DESTINATIONS: Final = tuple(
    r.value.lower()
    for r in (
        Recipient.SELLERS,
        Recipient.BUSINESS_PARTNERS,
        Recipient.GROUP_COMPANIES,
        Recipient.GOOGLE,
        Recipient.FACEBOOK,
        Recipient.INSTAGRAM,
        Recipient.TWITTER,
        Recipient.VKONTAKTE,
        Recipient.CRITEO,
        Recipient.BING,
        Recipient.YAHOO,
        Recipient.MAIL_RU,
        Recipient.YANDEX,
        Recipient.GOOGLE_ANALYTICS,
        Recipient.ANALYTICS_PROVIDERS,
        Recipient.OTHERS_BY_CONSENT,
    )
)
"""Every partner destination of the PARTNER_SHARING sink family."""
