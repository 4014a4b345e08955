"""Japanese mobile carriers and ISPs: au/KDDI (EZweb), NTT docomo, SoftBank, Biglobe.

Their reports are short, often in Japanese (ISO-2022-JP, decoded by the parser) and
without a DSN part:

* au/KDDI/EZweb: "Your mail sent on ... was not delivered to: <rcpt> because: The user(s)
  account is disabled." or ``<rcpt>: User unknown``; sender ``@ezweb.ne.jp``,
  ``@au.com``, ``@kddi.com``.
* NTT docomo: Postfix-style ``<rcpt>: host ...docomo.ne.jp said: 550 Unknown user``;
  sender ``@docomo.ne.jp``.
* SoftBank: Japanese "配信できませんでした" / "宛先不明" with the address on its own
  line; sender ``@softbank.ne.jp``, ``@i.softbank.jp``, ``@disney.ne.jp``.
* Biglobe: "The following addresses had permanent fatal errors" or Japanese
  "宛先のメールアドレスが見つかりません"; sender ``@biglobe.ne.jp``.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

_JAPANESE = (r"配信できませんでした|送信できませんでした|届きませんでした|宛先不明"
             r"|メールアドレスが見つかりません|配送できませんでした|エラーが発生しました")

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "au-kddi",
        pattern(r"Your mail sent on:?[^\n]{0,100}\n?[ \t]{0,20}was not delivered to:?",
                r"ezweb\.ne\.jp|@au\.com|kddi\.com", r"The user\(s\) account is"),
        start=pattern(r"was not delivered to:?", r"^[ \t]{0,20}because:?"),
        inline=pattern(r"was not delivered to:?[ \t]{0,5}")),
    TextFormat(
        "docomo",
        pattern(r"docomo\.ne\.jp"),
        start=pattern(r"^[ \t]{1,40}The mail system[ \t]*$")),
    TextFormat(
        "softbank",
        pattern(r"softbank\.ne\.jp|i\.softbank\.jp|disney\.ne\.jp|vodafone\.ne\.jp")),
    TextFormat(
        "biglobe",
        pattern(r"biglobe\.ne\.jp|BIGLOBE")),
    TextFormat("japanese", pattern(_JAPANESE)),
)
