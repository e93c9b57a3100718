from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings

Seconds = Annotated[float, Field(gt=0)]


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_NOTIFY_", extra="ignore", frozen=True)

    http_port: int = 8083
    # `production` refuses to start without SECRET_KEY; `development` (make up, the tests) uses a well-known one.
    environment: Literal["production", "development"] = "production"
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Keys link tokens (unsubscribe, follow-up), the suppression list's hashes and webhook secrets.",
    )
    # Links in messages (unsubscribe, follow-up answers) point here.
    public_base_url: str = "http://127.0.0.1:8083"
    # Where staff open an item; {feedback_id} is replaced.
    staff_url_template: str = "http://127.0.0.1:8081/v1/staff/feedback/{feedback_id}"

    # The department's file of who is reached how, and the organisation it must agree with ("" skips the check).
    contacts_file: str = "config/contacts.yaml"
    organisation_file: str = "config/organisation.yaml"

    # Intake's contact-disclosure endpoint: the only way notify learns a resident's address, at send time.
    intake_url: str = "http://127.0.0.1:8081"
    intake_token: SecretStr = SecretStr("")
    intake_timeout_seconds: Seconds = 10.0

    # E-mail.
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 1025
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_seconds: Seconds = 15.0
    mail_from: str = "Riverton Police Department — Heard <heard@riverton.example>"
    message_id_domain: str = "heard.riverton.example"

    # Webhooks.
    webhook_timeout_seconds: Seconds = 10.0
    webhook_allow_private_addresses: bool = False

    # SMS: `capture` keeps messages in memory (development and tests), `twilio` calls a Twilio-compatible API.
    sms_provider: Literal["capture", "twilio", "disabled"] = "capture"
    sms_api_base_url: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: SecretStr = SecretStr("")
    sms_from: str = ""
    sms_timeout_seconds: Seconds = 10.0

    # Dispatch: how many sends at once per replica, how long a claim lasts, how often to look for due work.
    dispatch_concurrency: Annotated[int, Field(ge=1, le=512)] = 16
    dispatch_lease_seconds: Seconds = 120.0
    dispatch_poll_seconds: Seconds = 0.5
    # Exponential backoff with full jitter: base * 2^(attempt-1), capped, until `retry_give_up_after` has passed.
    retry_base_seconds: Seconds = 10.0
    retry_cap_seconds: Seconds = 6 * 3600.0
    retry_give_up_after_seconds: Seconds = 3 * 86400.0
    retry_max_attempts: Annotated[int, Field(ge=1, le=100)] = 30

    # Who hears what, when.
    follow_up_after_seconds: Seconds = 7 * 86400.0
    # A reminder goes out when this fraction of a deadline's window is left.
    reminder_lead_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25
    digest_check_seconds: Seconds = 60.0

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotifySettings:
        # A claim must outlive the slowest attempt (intake's answer, then the send), or a second claim would send
        # the same message while the first is still sending it.
        slowest = self.intake_timeout_seconds + max(
            self.smtp_timeout_seconds, self.webhook_timeout_seconds, self.sms_timeout_seconds
        )
        if self.dispatch_lease_seconds < slowest + 5:
            raise ValueError(
                f"dispatch_lease_seconds ({self.dispatch_lease_seconds:g}) must exceed the intake timeout plus the "
                f"longest send timeout by at least 5 s ({slowest + 5:g})"
            )
        return self
