"""SMS PDU codec (3GPP TS 23.040 / 23.038), sans-I/O."""

from modem.pdu.address import Address, NumberingPlan, TypeOfNumber
from modem.pdu.anomaly import Anomaly, AnomalyCode
from modem.pdu.dcs import Alphabet, DataCodingScheme, MessageClass, MessageWaitingType
from modem.pdu.errors import PduError
from modem.pdu.fields import to_fields
from modem.pdu.reassembly import IncompleteMessage, ReassembledMessage, Reassembler, join_parts
from modem.pdu.segment import (
    MessageCount,
    Segmentation,
    build_data_submits,
    build_submits,
    count,
    segment,
    split_data,
)
from modem.pdu.tpdu import (
    DeliveryStatus,
    EncodedPdu,
    Pdu,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    Tpdu,
    UserData,
    ValidityPeriodFormat,
    decode_pdu,
    decode_tpdu,
    encode_pdu,
)
from modem.pdu.udh import ApplicationPorts, Concatenation, InformationElement, UserDataHeader

__all__ = [
    "Address",
    "Alphabet",
    "Anomaly",
    "AnomalyCode",
    "ApplicationPorts",
    "Concatenation",
    "DataCodingScheme",
    "DeliveryStatus",
    "EncodedPdu",
    "IncompleteMessage",
    "InformationElement",
    "MessageClass",
    "MessageCount",
    "MessageWaitingType",
    "NumberingPlan",
    "Pdu",
    "PduError",
    "ReassembledMessage",
    "Reassembler",
    "Segmentation",
    "SmsDeliver",
    "SmsStatusReport",
    "SmsSubmit",
    "Tpdu",
    "TypeOfNumber",
    "UserData",
    "UserDataHeader",
    "ValidityPeriodFormat",
    "build_data_submits",
    "build_submits",
    "count",
    "decode_pdu",
    "decode_tpdu",
    "encode_pdu",
    "join_parts",
    "segment",
    "split_data",
    "to_fields",
]
