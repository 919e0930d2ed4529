"""Classifying a care need from what the member wrote (需求 张三 …)."""

from __future__ import annotations

import pytest

from storage.needs import classify_need


@pytest.mark.parametrize(
    "text, kind",
    [
        ("买菜", "生活物资"),
        ("家里没米了", "生活物资"),
        ("帮忙取个快递", "生活物资"),
        ("需要桶装水两桶", "生活物资"),
        ("缺卫生纸和口罩", "生活物资"),
        ("需要去医院开降压药", "就医"),
        ("孩子发烧想看病", "就医"),
        ("买点感冒药", "就医"),
        ("老人每周要透析", "就医"),
        ("一个人在家很焦虑，晚上失眠", "心理疏导"),
        ("想找人聊天", "心理疏导"),
        ("修水管", "其他"),
        ("家里水管坏了", "其他"),
        ("见面谈谈补贴的事", "其他"),
        ("生活物资", "生活物资"),
        ("心理疏导", "心理疏导"),
        ("", "其他"),
    ],
)
def test_classify_need(text: str, kind: str) -> None:
    assert classify_need(text) == kind
