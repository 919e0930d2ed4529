"""The WeChat wire: the /wechat callback, its crypto and XML, and the passive reply."""
