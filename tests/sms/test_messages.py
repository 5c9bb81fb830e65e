"""Message texts, reply words, message ids and the codec: the pure parts."""

from __future__ import annotations

import pytest
import smpp34
from smpplib import client as smpp_client
from smpplib import smpp

from qz_outbound.sms.inbound import classify_reply
from qz_outbound.sms.link import decode_deliver_sm, encode_submit_sm
from qz_outbound.phone import mask
from qz_outbound.phone import normalise as normalise_msisdn
from qz_outbound.sms.outbox import derive_state, message_id_keys
from qz_outbound.sms.render import RenderError, decode_short_message, render_sms
from qz_outbound.sms.settings import RepliesConfig, load_sms_config

from sms_support import FLOW_PACK

MSG = load_sms_config().message


def test_signature_first_and_opt_out_last():
    sms = render_sms("demo_flow_pack", FLOW_PACK, MSG)
    assert sms.text.startswith("【泉州移动】")
    assert sms.text.endswith("回复TD退订")
    assert "5G畅享流量包" in sms.text and "30元" in sms.text
    assert len(sms.parts) == 1 and sms.data_coding == 8 and sms.esm_class == 0
    assert sms.parts[0].decode("utf-16-be") == sms.text


def test_150_chinese_characters_become_three_udh_parts():
    body = "泉" * (150 - len(MSG.signature) - len(MSG.opt_out_text))
    sms = render_sms("demo_flow_pack", FLOW_PACK, MSG)  # warm
    from qz_outbound.sms.render import frame, split

    sms = split(frame(body, MSG), MSG.max_parts)
    assert len(sms.text) == 150
    assert len(sms.parts) == 3 and sms.esm_class == 0x40 and sms.data_coding == 8
    refs = {p[3] for p in sms.parts}
    assert len(refs) == 1                                   # one concatenation reference
    assert [p[:3] for p in sms.parts] == [b"\x05\x00\x03"] * 3
    assert [(p[4], p[5]) for p in sms.parts] == [(3, 1), (3, 2), (3, 3)]
    assert all(len(p) - 6 <= 67 * 2 for p in sms.parts)     # at most 67 UCS-2 characters each
    assert "".join(decode_short_message(p, 8, 0x40) for p in sms.parts) == sms.text


@pytest.mark.parametrize("context, reason", [
    ({"product_name": "流量包", "price_yuan": 30}, "'data_gb' is undefined"),
    ({"product_name": "流量包😀", "price_yuan": 30, "data_gb": 1}, "outside UCS-2"),
    ({"product_name": "长" * 400, "price_yuan": 30, "data_gb": 1}, "more than the 5 allowed"),
])
def test_a_template_that_does_not_render_is_an_error_never_a_half_text(context, reason):
    with pytest.raises(RenderError) as err:
        render_sms("demo_flow_pack", context, MSG)
    assert reason in err.value.reason


def test_unknown_template_is_a_render_error():
    with pytest.raises(RenderError, match="not found"):
        render_sms("no_such_campaign", {}, MSG)


@pytest.mark.parametrize("text, kind", [
    # accept: the four words, trimmed, any case, full-width folded, punctuation dropped
    ("1", "accept"), ("y", "accept"), (" Y ", "accept"), ("是", "accept"), ("好", "accept"), ("１", "accept"),
    ("好！", "accept"), ("是。", "accept"), ("ｙ", "accept"),
    # opt-out: the exact words
    ("TD", "opt_out"), ("td", "opt_out"), ("ＴＤ", "opt_out"), ("t", "opt_out"), ("N", "opt_out"), ("r", "opt_out"),
    ("0000", "opt_out"), ("０ ０ ０ ０", "opt_out"), ("退订", "opt_out"), (" 取消\u3000", "opt_out"),
    ("取消。", "opt_out"),
    # opt-out: the spec's answers to the footer "回复TD退订", and their neighbours
    ("TD退订", "opt_out"), ("回复TD退订", "opt_out"), ("退订。", "opt_out"), ("T D", "opt_out"),
    ("t.d.", "opt_out"), ("Ｔ　Ｄ", "opt_out"), ("td\u200b", "opt_out"), ("TD!!", "opt_out"),
    ("tdtd", "opt_out"), ("请帮我退订，谢谢", "opt_out"), ("不要再发了退订", "opt_out"), ("【退订】", "opt_out"),
    ("退 订", "opt_out"),
    # unrecognised: for a person to read
    ("2", "unrecognised"), ("好的谢谢", "unrecognised"), ("", "unrecognised"), ("   ", "unrecognised"),
    ("什么活动？", "unrecognised"), ("YES", "unrecognised"), ("11", "unrecognised"),
    ("订", "unrecognised"), ("。。。", "unrecognised"),
])
def test_replies_are_classified_per_the_spec(text, kind):
    assert classify_reply(text) == kind


def test_config_words_are_normalised_like_the_reply():
    replies = RepliesConfig(extra_accept=["办理"], extra_opt_out=["不要 再发", "。"])
    assert classify_reply("办理！", replies) == "accept"
    assert classify_reply("不要再发！", replies) == "opt_out"
    assert classify_reply("", replies) == "unrecognised"     # a word of only punctuation matches nothing
    assert classify_reply("办理", None) == "unrecognised"


def test_message_ids_are_read_in_both_bases():
    assert message_id_keys("1A2B") == (None, str(0x1A2B))
    assert message_id_keys("6699") == ("6699", str(0x6699))
    assert message_id_keys("00FF") == (None, "255")
    assert message_id_keys("c4ca4238-a0b9-3382-8dcc-509a6f75849b") == (None, None)
    # a receipt quoting 6699 (decimal) finds the part accepted as 1A2B (hex)
    assert str(int("6699", 10)) in message_id_keys("1A2B")


def test_numbers_and_masking():
    assert normalise_msisdn("+8613912345678") == normalise_msisdn("8613912345678") == "13912345678"
    assert normalise_msisdn("008613912345678") == "13912345678"
    assert mask("13912345678") == "139****5678"


def test_message_state_comes_from_its_parts():
    assert derive_state(["accepted", "pending"]) == "queued"
    assert derive_state(["delivered", "delivered"]) == "delivered"
    assert derive_state(["delivered", "undelivered"]) == "undelivered"
    assert derive_state(["accepted", "in_doubt"]) == "in_doubt"
    assert derive_state(["accepted", "rejected", "skipped"]) == "rejected"
    assert derive_state(["skipped"]) == "skipped"
    assert derive_state(["delivered", "accepted"]) == "submitted"


def test_submit_sm_from_smpp34_is_byte_for_byte_smpplibs():
    c = smpp_client.Client("127.0.0.1", 1, allow_unknown_opt_params=True)
    for payload, esm in ((b"\x05\x00\x03\x07\x02\x01" + "泉州".encode("utf-16-be"), 0x40),
                         ("【泉州移动】".encode("utf-16-be"), 0)):
        ref = smpp.make_pdu("submit_sm", client=c, source_addr_ton=0, source_addr_npi=0, source_addr="10658",
                            dest_addr_ton=0, dest_addr_npi=1, destination_addr="13912345678", esm_class=esm,
                            data_coding=8, registered_delivery=1, short_message=payload)
        ours = encode_submit_sm(ref.sequence, source_addr="10658", destination_addr="13912345678",
                                short_message=payload, esm_class=esm, data_coding=8, registered_delivery=1)
        assert ours == ref.generate()


def test_deliver_sm_decoding_reads_receipt_fields():
    raw = smpp34.DeliverSm(source_addr="13912345678", destination_addr="10658", esm_class=0x04,
                           short_message=b"id:6699 sub:001 dlvrd:001 stat:DELIVRD err:000 text:", sequence_number=9,
                           tlvs=[smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"1A2B\x00"),
                                 smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2]))]).encode()
    pdu = decode_deliver_sm(raw)
    assert (pdu.sequence, pdu.esm_class, pdu.receipted_message_id, pdu.message_state) == (9, 4, "1A2B", 2)
    assert pdu.source_addr == "13912345678"


def test_messages_rendered_one_by_one_get_their_own_16_bit_reference():
    """Long messages queued one by one (a shop owner gets many a day) carry a 16-bit reference
    derived from their id: distinct for different messages, the same on a re-render (a retry sends
    the same bytes), and the handset joins them back into the text."""
    from qz_outbound.dev.smsc import _udh_key
    from qz_outbound.sms.render import decode_short_message, split, with_reference

    text = "【泉州移动】" + "尊敬的客户，您好！" * 12 + "回复TD退订"
    base = split(text, 5)
    refs = set()
    for k in range(300):
        sms = with_reference(base, f"C{k:06d}", 5)
        keys = [_udh_key(p, sms.esm_class) for p in sms.parts]
        assert [p[:3] for p in sms.parts] == [b"\x06\x08\x04"] * len(sms.parts)
        assert len({k_[0] for k_ in keys}) == 1 and [k_[2] for k_ in keys] == list(range(1, len(keys) + 1))
        assert "".join(decode_short_message(p, sms.data_coding, sms.esm_class) for p in sms.parts) == text
        refs.add(keys[0][0])
    assert len(refs) >= 298                      # 300 messages: practically no shared reference
    assert with_reference(base, "C000001", 5) == with_reference(base, "C000001", 5)
    short = split("【泉州移动】短信", 5)
    assert with_reference(short, "C1", 5) is short
